// How many threads the kernels (oneDNN GEMMs and moeslim's own loops) use.
//
// The library's default is 1; the commands set every usable CPU (core/cpu_budget.h) unless --threads says
// otherwise. Output never depends on the count: every parallel loop splits work whose results do not depend on
// the split (rows, experts, blocks), and every reduction is summed in a fixed order.
//
// OpenMP's wait policy: libgomp reads OMP_WAIT_POLICY once, when it loads, and by default lets idle threads
// spin between parallel regions. Beside another busy process (or a second run), spinning threads starve the
// working ones many times over; passive waiting does not, and costs nothing measurable on a machine the run
// has to itself. The `moeslim` command therefore starts itself with OMP_WAIT_POLICY=passive unless the user
// chose a policy (cli/main.cc, with the measurements); benchmarks and tests that link the library get
// libgomp's default unless their environment says otherwise (CTest sets passive for the suite).
#pragma once

#include <cstdint>
#include <functional>

namespace moeslim::kernels {

// Sets the thread count for all later kernel calls, from any thread. Throws kInvalidArgument if n < 1.
void set_num_threads(int n);
// The count kernels called from this thread use: set_num_threads()'s, or 1 inside a SerialKernelsScope.
int num_threads();

// Applies the setting to the calling thread's OpenMP state (omp_set_num_threads is per thread).
// Every kernel entry point calls this; it costs one comparison when nothing changed.
void apply_num_threads();

// While one is alive, kernels called from this thread run on this thread alone. run_tasks puts one around
// each task: with the threads already spread over tasks, a GEMM inside one would otherwise start a team of
// its own. Nests.
class SerialKernelsScope {
 public:
  SerialKernelsScope();
  ~SerialKernelsScope();
  SerialKernelsScope(const SerialKernelsScope&) = delete;
  SerialKernelsScope& operator=(const SerialKernelsScope&) = delete;
};

// How many workers run_tasks(…, parallel) uses: num_threads(), or 1 when not parallel.
int task_worker_count(bool parallel);

// Calls body(task, worker) for every task in [0, count), worker in [0, task_worker_count(parallel)).
// parallel: the tasks are handed out one at a time, in index order, to that many threads (order tasks
// heaviest first to balance them), each running its kernels serially; the body must then be safe to run for
// two tasks at once. Not parallel, or a single task: in index order on the calling thread, kernels with all
// their threads. If a task throws, the tasks not yet started are skipped and the exception of the
// lowest-numbered failing task is rethrown.
void run_tasks(std::int64_t count, bool parallel, const std::function<void(std::int64_t task, int worker)>& body);

}  // namespace moeslim::kernels
