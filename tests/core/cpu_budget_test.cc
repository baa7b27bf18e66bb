// The default thread count: the affinity mask and the cgroup CPU quota.
#include <gtest/gtest.h>

#include <sched.h>

#include "core/cpu_budget.h"

namespace moeslim {
namespace {

TEST(CpuBudget, CgroupV2Quota) {
  EXPECT_EQ(cgroup_v2_cpu_quota("max 100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(cgroup_v2_cpu_quota("200000 100000\n").value(), 2.0);
  EXPECT_DOUBLE_EQ(cgroup_v2_cpu_quota("150000 100000").value(), 1.5);
  for (const char* bad : {"", "200000", "x 100000", "200000 0", "-1 100000", "200000 100000 7"}) {
    EXPECT_EQ(cgroup_v2_cpu_quota(bad), std::nullopt) << bad;
  }
}

TEST(CpuBudget, CgroupV1Quota) {
  EXPECT_EQ(cgroup_v1_cpu_quota("-1\n", "100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(cgroup_v1_cpu_quota("400000\n", "100000\n").value(), 4.0);
  EXPECT_EQ(cgroup_v1_cpu_quota("", ""), std::nullopt);  // no v1 cpu controller
}

TEST(CpuBudget, NeverMoreThanTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int usable = usable_cpus();
  EXPECT_GE(usable, 1);
  EXPECT_LE(usable, CPU_COUNT(&set));
}

}  // namespace
}  // namespace moeslim
