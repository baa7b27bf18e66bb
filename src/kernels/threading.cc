#include "kernels/threading.h"

#include <omp.h>

#include <atomic>
#include <string>

#include "core/error.h"

namespace moeslim::kernels {
namespace {
std::atomic<int> g_num_threads{1};
}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw Error(ErrorCode::kInvalidArgument, "thread count must be at least 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
  apply_num_threads();
}

int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }

void apply_num_threads() {
  const int wanted = num_threads();
  if (omp_get_max_threads() != wanted) omp_set_num_threads(wanted);
}


}  // namespace moeslim::kernels
