#include "core/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace moeslim {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::optional<long long> whole_number(std::string_view s) {
  s = trim(s);
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> quota_in_cpus(std::optional<long long> quota, std::optional<long long> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

// A small file's whole text, or "" when it cannot be read (no cgroup file means no limit from it).
std::string read_small_file(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// The process's own cgroup is mounted at /sys/fs/cgroup inside a container (cgroup namespaces) and on hosts
// whose processes sit in the root group; a deeper host group's limit is the container runtime's business.
std::optional<double> cgroup_quota() {
  const std::string v2 = read_small_file("/sys/fs/cgroup/cpu.max");
  if (!v2.empty()) return cgroup_v2_cpu_quota(v2);
  return cgroup_v1_cpu_quota(read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                             read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
}

}  // namespace

std::optional<double> cgroup_v2_cpu_quota(std::string_view cpu_max) {
  cpu_max = trim(cpu_max);
  const std::size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view quota = cpu_max.substr(0, space);
  if (quota == "max") return std::nullopt;
  return quota_in_cpus(whole_number(quota), whole_number(cpu_max.substr(space + 1)));
}

std::optional<double> cgroup_v1_cpu_quota(std::string_view cfs_quota_us, std::string_view cfs_period_us) {
  return quota_in_cpus(whole_number(cfs_quota_us), whole_number(cfs_period_us));
}

int usable_cpus() {
  int cpus = affinity_cpus();
  if (const std::optional<double> quota = cgroup_quota()) {
    cpus = std::min(cpus, std::max(1, static_cast<int>(std::ceil(*quota))));
  }
  return cpus;
}

}  // namespace moeslim
