#include "cli/thread_option.h"

#include <fmt/format.h>

#include "core/cpu_budget.h"

namespace moeslim::cli {

void add_threads_option(CLI::App& sub, int& threads) {
  threads = usable_cpus();
  sub.add_option("--threads", threads,
                 fmt::format("Compute threads. Default: every CPU this process may use, i.e. its affinity mask "
                             "(taskset, a container's cpuset) capped by a cgroup CPU quota (docker --cpus): {} "
                             "here. Every count writes byte-identical output. On a machine shared with other busy processes, "
                             "export OMP_WAIT_POLICY=passive",
                             threads))
      ->check(CLI::Range(1, 1024));
}

}  // namespace moeslim::cli
