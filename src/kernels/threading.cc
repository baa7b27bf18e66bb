#include "kernels/threading.h"

#include <omp.h>

#include <atomic>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"

namespace moeslim::kernels {
namespace {
std::atomic<int> g_num_threads{1};
thread_local int t_serial_depth = 0;  // SerialKernelsScopes alive on this thread
}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw Error(ErrorCode::kInvalidArgument, "thread count must be at least 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
  apply_num_threads();
}

int num_threads() { return t_serial_depth > 0 ? 1 : g_num_threads.load(std::memory_order_relaxed); }

void apply_num_threads() {
  const int wanted = num_threads();
  if (omp_get_max_threads() != wanted) omp_set_num_threads(wanted);
}

SerialKernelsScope::SerialKernelsScope() {
  ++t_serial_depth;
  apply_num_threads();
}

SerialKernelsScope::~SerialKernelsScope() {
  --t_serial_depth;
  apply_num_threads();
}

int task_worker_count(bool parallel) { return parallel ? num_threads() : 1; }

void run_tasks(std::int64_t count, bool parallel, const std::function<void(std::int64_t task, int worker)>& body) {
  if (count <= 0) return;
  const int workers = task_worker_count(parallel);
  if (workers == 1 || count == 1) {
    for (std::int64_t t = 0; t < count; ++t) body(t, 0);
    return;
  }
  // An exception must not leave an OpenMP region: each task's is kept, and the first by index rethrown.
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(count));
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(workers)
  for (std::int64_t t = 0; t < count; ++t) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      SerialKernelsScope serial;
      body(t, omp_get_thread_num());
    } catch (...) {
      errors[static_cast<std::size_t>(t)] = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  }
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace moeslim::kernels
