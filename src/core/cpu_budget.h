// How many CPUs this process may use: the default thread count of every command.
//
// Two limits apply. The affinity mask (taskset, numactl, a container's cpuset) says which CPUs the process
// may run on; a cgroup CPU quota (docker --cpus, Kubernetes limits) says how much CPU time per period it may
// use, whatever the mask. A process with 64 CPUs in its mask and a 4-CPU quota that ran 64 threads would be
// throttled every period, so the usable count is the smaller of the two.
#pragma once

#include <optional>
#include <string_view>

namespace moeslim {

// The CPUs this process may use: min(affinity mask, cgroup quota rounded up), at least 1.
int usable_cpus();

// The parsers behind it, exposed for tests. The quota in CPUs (quota / period), or nullopt when there is none
// or the text is not understood (a limit that cannot be read is no limit; the mask still applies).
// cgroup v2 "cpu.max": "<quota> <period>" or "max <period>".
std::optional<double> cgroup_v2_cpu_quota(std::string_view cpu_max);
// cgroup v1 "cpu.cfs_quota_us" (-1 for none) and "cpu.cfs_period_us".
std::optional<double> cgroup_v1_cpu_quota(std::string_view cfs_quota_us, std::string_view cfs_period_us);

}  // namespace moeslim
