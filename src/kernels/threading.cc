#include "kernels/threading.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <strings.h>

#include "core/error.h"

#include "core/log.h"

namespace moeslim::kernels {
namespace {
std::atomic<int> g_num_threads{1};
}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw Error(ErrorCode::kInvalidArgument, "thread count must be at least 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
  apply_num_threads();
  // libgomp reads OMP_WAIT_POLICY when it loads, before main(): the program cannot set it for itself.
  static bool warned = false;
  if (n > 1 && !omp_wait_policy_is_passive() && !warned) {
    warned = true;
    log_warn("--threads {} without OMP_WAIT_POLICY=passive: spinning OpenMP threads can run many times slower "
             "when the vCPUs share a core or another process is busy; export OMP_WAIT_POLICY=passive",
             n);
  }
}

int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }

void apply_num_threads() {
  const int wanted = num_threads();
  if (omp_get_max_threads() != wanted) omp_set_num_threads(wanted);
}

bool omp_wait_policy_is_passive() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  return policy != nullptr && ::strcasecmp(policy, "passive") == 0;
}

}  // namespace moeslim::kernels
