#include "kernels/threading.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "common/scoped_threads.h"
#include "core/error.h"

namespace moeslim::kernels {
namespace {

using moeslim::testing::ScopedThreads;

TEST(SerialKernelsScope, MakesThisThreadSerialAndNests) {
  ScopedThreads threads(3);
  EXPECT_EQ(num_threads(), 3);
  {
    SerialKernelsScope outer;
    EXPECT_EQ(num_threads(), 1);
    {
      SerialKernelsScope inner;
      EXPECT_EQ(num_threads(), 1);
    }
    EXPECT_EQ(num_threads(), 1);
  }
  EXPECT_EQ(num_threads(), 3);
}

TEST(RunTasks, SerialRunsEveryTaskInOrderOnWorkerZeroWithKernelThreads) {
  ScopedThreads threads(2);
  EXPECT_EQ(task_worker_count(false), 1);
  std::vector<std::int64_t> seen;
  run_tasks(5, false, [&](std::int64_t task, int worker) {
    EXPECT_EQ(worker, 0);
    EXPECT_EQ(num_threads(), 2);  // a serial task's kernels keep their threads
    seen.push_back(task);
  });
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
}

TEST(RunTasks, ParallelRunsEveryTaskOnceOnKnownWorkersWithSerialKernels) {
  ScopedThreads threads(2);
  const int workers = task_worker_count(true);
  EXPECT_EQ(workers, 2);
  std::vector<std::atomic<int>> runs(100);
  std::atomic<int> bad_worker{0}, not_serial{0};
  run_tasks(100, true, [&](std::int64_t task, int worker) {
    if (worker < 0 || worker >= workers) ++bad_worker;
    if (num_threads() != 1) ++not_serial;
    ++runs[static_cast<std::size_t>(task)];
  });
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
  EXPECT_EQ(bad_worker.load(), 0);
  EXPECT_EQ(not_serial.load(), 0);
  EXPECT_EQ(num_threads(), 2);  // the caller's setting is untouched
}

TEST(RunTasks, RethrowsTheLowestNumberedFailure) {
  for (bool parallel : {false, true}) {
    ScopedThreads threads(2);
    try {
      run_tasks(8, parallel, [&](std::int64_t task, int) {
        if (task == 3 || task == 5) throw Error(ErrorCode::kInvalidArgument, "task " + std::to_string(task));
      });
      FAIL() << "no exception";
    } catch (const Error& e) {
      // Serial stops at 3; in parallel 5 may also have failed, and 3 still wins.
      EXPECT_EQ(e.detail(), "task 3") << (parallel ? "parallel" : "serial");
    }
  }
}

TEST(RunTasks, NoTasksIsANoOp) {
  bool called = false;
  run_tasks(0, true, [&](std::int64_t, int) { called = true; });
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace moeslim::kernels
