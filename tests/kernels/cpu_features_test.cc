#include "kernels/cpu_features.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/threading.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

TEST(CpuFeatures, DescribesModelFlagsAndChosenPaths) {
  const std::string d = describe_cpu();
  EXPECT_NE(d.find(" | kernels: "), std::string::npos) << d;
  EXPECT_NE(d.find(" | oneDNN: "), std::string::npos) << d;
  EXPECT_NE(d.find(onednn_isa_name()), std::string::npos);
  EXPECT_FALSE(onednn_isa_name().empty());
  std::printf("%s\n", d.c_str());
}

TEST(CpuFeatures, FlagsAreConsistent) {
  const CpuFeatures& f = cpu_features();
  EXPECT_TRUE(f.avx512f || !(f.avx512bw || f.avx512vl || f.avx512bf16 || f.avx512vnni));
  EXPECT_TRUE(f.amx_tile || !(f.amx_bf16 || f.amx_int8));
  EXPECT_TRUE(f.amx_tile || !onednn_uses_amx());
}

TEST(CpuFeatures, DispatchPicksTheBestPathAndCanBeForcedToTheFallback) {
  const CpuFeatures& f = cpu_features();
  const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl;
  EXPECT_EQ(active_kernel_isa(), best_kernel_isa());
  {
    testing::ScopedKernelIsa portable(KernelIsa::kPortable);
    EXPECT_EQ(active_kernel_isa(), KernelIsa::kPortable);
    EXPECT_NE(describe_cpu().find("kernels: portable"), std::string::npos);
  }
  if (avx512) {
    set_kernel_isa(KernelIsa::kAvx512);
    EXPECT_EQ(active_kernel_isa(), KernelIsa::kAvx512);
    set_kernel_isa(best_kernel_isa());
  } else {
    EXPECT_THROW(set_kernel_isa(KernelIsa::kAvx512), Error);
  }
  EXPECT_STREQ(kernel_isa_name(KernelIsa::kPortable), "portable");
  EXPECT_STREQ(kernel_isa_name(KernelIsa::kAvx512), "avx512");
}

TEST(Threading, DefaultsToOneThreadAndRejectsZero) {
  EXPECT_EQ(num_threads(), 1);
  EXPECT_THROW(set_num_threads(0), Error);
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
  set_num_threads(1);
}

}  // namespace
}  // namespace moeslim::kernels
