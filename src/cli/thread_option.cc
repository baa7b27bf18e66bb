#include "cli/thread_option.h"

#include <fmt/format.h>

#include "core/cpu_budget.h"

namespace moeslim::cli {

void add_threads_option(CLI::App& sub, int& threads) {
  threads = usable_cpus();
  sub.add_option("--threads", threads,
                 fmt::format("Compute threads. Default: every CPU this process may use, i.e. its affinity mask "
                             "(taskset, a container's cpuset) capped by a cgroup CPU quota (docker --cpus): {} "
                             "here. Every count writes byte-identical output. Idle threads wait passively (OMP_WAIT_POLICY=passive, "
                             "unless you set it), so runs sharing a machine do not starve each other",
                             threads))
      ->check(CLI::Range(1, 1024));
}

}  // namespace moeslim::cli
