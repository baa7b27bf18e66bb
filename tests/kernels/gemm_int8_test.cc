#include "kernels/gemm_int8.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/gemm_reference.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::random_ints;

struct Shape {
  std::int64_t m, n, k;
};
const Shape kShapes[] = {{1, 37, 53}, {3, 100, 129}, {17, 257, 300}, {64, 61, 1031}};

class Int8Backends : public ::testing::TestWithParam<Int8GemmBackend> {
 protected:
  void SetUp() override {
    // oneDNN's int8 kernels can saturate without VNNI/AMX (see gemm_int8.h); the portable backend runs anywhere.
    set_int8_gemm_backend(Int8GemmBackend::kAuto);
    if (GetParam() == Int8GemmBackend::kOneDnn && int8_gemm_backend() != Int8GemmBackend::kOneDnn) {
      GTEST_SKIP() << "oneDNN int8 is not exact on this CPU";
    }
  }
};

template <typename Act>
void check_exact(Int8GemmBackend backend, WeightStorage storage, int act_lo, int act_hi, std::uint32_t seed) {
  testing::ScopedInt8Backend scoped(backend);
  for (const Shape& s : kShapes) {
    const std::int64_t ldx = s.k + 3, ldw = s.k + 1, ldy = s.n + 2;
    const auto x = random_ints<Act>(static_cast<std::size_t>(s.m * ldx), seed++, act_lo, act_hi);
    const auto w = random_ints<std::int8_t>(static_cast<std::size_t>(s.n * ldw), seed++, -128, 127);
    std::vector<std::int32_t> ref(static_cast<std::size_t>(s.m * ldy), 0), acc(ref.size(), 0);
    reference_gemm_s32(x.data(), s.m, s.k, ldx, w.data(), s.n, ldw, ref.data(), ldy);
    const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), s.n, s.k, ldw, storage);
    if constexpr (std::is_same_v<Act, std::uint8_t>) {
      gemm_u8s8_s32(x.data(), s.m, ldx, pw, acc.data(), ldy);
    } else {
      gemm_s8s8_s32(x.data(), s.m, ldx, pw, acc.data(), ldy);
    }
    EXPECT_EQ(acc, ref) << s.m << "x" << s.n << "x" << s.k << " backend " << int8_gemm_backend_name(backend);
  }
}

TEST_P(Int8Backends, U8TimesS8IsExact) {
  check_exact<std::uint8_t>(GetParam(), WeightStorage::kPacked, 0, 255, 1);
  check_exact<std::uint8_t>(GetParam(), WeightStorage::kBorrowed, 0, 255, 2);
}

TEST_P(Int8Backends, S8TimesS8IsExact) {
  check_exact<std::int8_t>(GetParam(), WeightStorage::kPacked, -128, 127, 3);
  check_exact<std::int8_t>(GetParam(), WeightStorage::kBorrowed, -128, 127, 4);
}

// Extreme values: every u8·s8 pair sum is 2·255·(−128) = −65280, which saturates an int16 (vpmaddubsw on
// non-VNNI CPUs); the int32 result must still be exact.
TEST_P(Int8Backends, ExtremeValuesDoNotSaturate) {
  testing::ScopedInt8Backend scoped(GetParam());
  const std::int64_t m = 3, n = 20, k = 4099;
  std::vector<std::uint8_t> xu(static_cast<std::size_t>(m * k), 255);
  std::vector<std::int8_t> xs(static_cast<std::size_t>(m * k), -128);
  std::vector<std::int8_t> w(static_cast<std::size_t>(n * k), -128);
  for (std::int64_t i = 0; i < k; ++i) w[static_cast<std::size_t>(n / 2 * k + i)] = 127;
  const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), n, k, k);
  std::vector<std::int32_t> acc(static_cast<std::size_t>(m * n));
  gemm_u8s8_s32(xu.data(), m, k, pw, acc.data(), n);
  EXPECT_EQ(acc[0], 255 * -128 * k);
  EXPECT_EQ(acc[n / 2], 255 * 127 * k);
  gemm_s8s8_s32(xs.data(), m, k, pw, acc.data(), n);
  EXPECT_EQ(acc[0], 128 * 128 * k);
  EXPECT_EQ(acc[n / 2], -128 * 127 * k);
}

// y = float(acc − z·Σw + bias)·row_scale·col_scale, computed here step by step from the exact reference.
TEST_P(Int8Backends, DequantisedOutputFollowsTheFormulaExactly) {
  testing::ScopedInt8Backend scoped(GetParam());
  const Shape s{17, 45, 130};
  const auto xu = random_ints<std::uint8_t>(static_cast<std::size_t>(s.m * s.k), 5, 0, 255);
  const auto xs = random_ints<std::int8_t>(static_cast<std::size_t>(s.m * s.k), 6, -127, 127);
  const auto w = random_ints<std::int8_t>(static_cast<std::size_t>(s.n * s.k), 7, -127, 127);
  const std::vector<float> row_scale = testing::random_floats(static_cast<std::size_t>(s.m), 8, 0.001f, 0.1f);
  const std::vector<float> col_scale = testing::random_floats(static_cast<std::size_t>(s.n), 9, 0.001f, 0.1f);
  const auto row_zero = random_ints<std::int32_t>(static_cast<std::size_t>(s.m), 10, 0, 255);
  const auto col_bias = random_ints<std::int32_t>(static_cast<std::size_t>(s.n), 11, -5000, 5000);
  const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), s.n, s.k, s.k);

  std::vector<std::int32_t> colsum(static_cast<std::size_t>(s.n), 0);
  for (std::int64_t c = 0; c < s.n; ++c) {
    for (std::int64_t i = 0; i < s.k; ++i) colsum[c] += w[c * s.k + i];
  }
  EXPECT_EQ(pw.column_sums(), colsum);

  std::vector<std::int32_t> acc(static_cast<std::size_t>(s.m * s.n));
  std::vector<float> y(acc.size()), expected(acc.size());
  // Asymmetric u8 (every parameter set).
  reference_gemm_s32(xu.data(), s.m, s.k, s.k, w.data(), s.n, s.k, acc.data(), s.n);
  const Int8Dequant full{row_scale.data(), col_scale.data(), row_zero.data(), col_bias.data()};
  gemm_u8s8_f32(xu.data(), s.m, s.k, pw, full, y.data(), s.n);
  for (std::int64_t r = 0; r < s.m; ++r) {
    for (std::int64_t c = 0; c < s.n; ++c) {
      const std::int64_t v = acc[r * s.n + c] - static_cast<std::int64_t>(row_zero[r]) * colsum[c] + col_bias[c];
      expected[r * s.n + c] = static_cast<float>(v) * row_scale[r] * col_scale[c];
    }
  }
  EXPECT_EQ(y, expected);
  // Dynamic symmetric s8 (per-token scale × per-channel scale only).
  reference_gemm_s32(xs.data(), s.m, s.k, s.k, w.data(), s.n, s.k, acc.data(), s.n);
  const Int8Dequant dynamic{row_scale.data(), col_scale.data(), nullptr, nullptr};
  gemm_s8s8_f32(xs.data(), s.m, s.k, pw, dynamic, y.data(), s.n);
  for (std::int64_t r = 0; r < s.m; ++r) {
    for (std::int64_t c = 0; c < s.n; ++c) {
      expected[r * s.n + c] = static_cast<float>(acc[r * s.n + c]) * row_scale[r] * col_scale[c];
    }
  }
  EXPECT_EQ(y, expected);
  // Static (msModelSlim W8A8): deq_scale ⊙ (acc + quant_bias).
  const Int8Dequant static_q{nullptr, col_scale.data(), nullptr, col_bias.data()};
  gemm_s8s8_f32(xs.data(), s.m, s.k, pw, static_q, y.data(), s.n);
  for (std::int64_t r = 0; r < s.m; ++r) {
    for (std::int64_t c = 0; c < s.n; ++c) {
      expected[r * s.n + c] = static_cast<float>(acc[r * s.n + c] + col_bias[c]) * col_scale[c];
    }
  }
  EXPECT_EQ(y, expected);
}

INSTANTIATE_TEST_SUITE_P(Kernels, Int8Backends,
                         ::testing::Values(Int8GemmBackend::kOneDnn, Int8GemmBackend::kPortable),
                         [](const auto& info) {
                           return std::string(info.param == Int8GemmBackend::kOneDnn ? "OneDnn" : "Portable");
                         });

TEST(GemmInt8, AutoBackendIsOneDnnWhereItsKernelsAreExact) {
  // oneDNN's ISA, not the CPU's: ONEDNN_MAX_CPU_ISA may cap it below VNNI.
  const std::string isa = onednn_isa_name();
  const bool vnni = isa == "avx512_core_vnni" || isa == "avx512_core_bf16" || isa == "avx512_core_amx" ||
                    isa == "avx2_vnni";
  EXPECT_EQ(int8_gemm_backend(), vnni ? Int8GemmBackend::kOneDnn : Int8GemmBackend::kPortable);
}

TEST(GemmInt8, PrimitivesAreReusedAcrossCalls) {
  const auto w = random_ints<std::int8_t>(40 * 70, 1, -127, 127);
  const auto x = random_ints<std::uint8_t>(9 * 70, 2, 0, 255);
  const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), 40, 70, 70);
  std::vector<std::int32_t> acc(9 * 40);
  gemm_u8s8_s32(x.data(), 9, 70, pw, acc.data(), 40);
  const GemmCacheStats warm = gemm_cache_stats();
  gemm_u8s8_s32(x.data(), 9, 70, pw, acc.data(), 40);
  EXPECT_EQ(gemm_cache_stats().misses, warm.misses);
}

TEST(GemmInt8, FromTensor) {
  const auto w = random_ints<std::int8_t>(6 * 10, 3, -127, 127);
  auto storage = std::make_shared<std::vector<std::int8_t>>(w);
  const Tensor view = Tensor::view(DType::kI8, {6, 10}, storage->data(), storage);
  const PreparedInt8Weight borrowed = PreparedInt8Weight::from_tensor(view, WeightStorage::kBorrowed);
  const PreparedInt8Weight packed = PreparedInt8Weight::from_tensor(view);
  storage.reset();
  const auto x = random_ints<std::uint8_t>(2 * 10, 4, 0, 255);
  std::vector<std::int32_t> a(12), b(12), ref(12);
  reference_gemm_s32(x.data(), 2, 10, 10, w.data(), 6, 10, ref.data(), 6);
  gemm_u8s8_s32(x.data(), 2, 10, borrowed, a.data(), 6);
  gemm_u8s8_s32(x.data(), 2, 10, packed, b.data(), 6);
  EXPECT_EQ(a, ref);
  EXPECT_EQ(b, ref);
  EXPECT_THROW(PreparedInt8Weight::from_tensor(Tensor::zeros(DType::kU8, {6, 10})), Error);
}

TEST(GemmInt8, RejectsBadShapes) {
  std::vector<std::int8_t> w(16);
  EXPECT_THROW(PreparedInt8Weight::from_s8(w.data(), 4, 4, 3), Error);
  EXPECT_THROW(PreparedInt8Weight::from_s8(w.data(), 1, kMaxInt8GemmK + 1, kMaxInt8GemmK + 1), Error);
  const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), 4, 4, 4);
  std::vector<std::uint8_t> x(8);
  std::vector<std::int32_t> acc(8);
  EXPECT_THROW(gemm_u8s8_s32(x.data(), 2, 3, pw, acc.data(), 4), Error);
  gemm_u8s8_s32(nullptr, 0, 4, pw, nullptr, 4);  // zero rows: nothing to do
}

}  // namespace
}  // namespace moeslim::kernels
