#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/scalar_math.h"
#include "kernels/simd_avx512.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::random_bf16;
using testing::random_floats;
using testing::ScopedKernelIsa;
using testing::ulp_distance;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Row lengths around the 16-lane SIMD width, plus model sizes (head_dim 64/128, hidden 256/2048).
const std::int64_t kLengths[] = {1, 5, 15, 16, 17, 33, 64, 100, 128, 256, 2048};

// ---------------------------------------------------------------------------------------------- exp

TEST(KernelExp, PortableExpIsWithinOneUlpOfDoubleExp) {
  std::int64_t worst = 0;
  for (float x = -87.0f; x < 88.7f; x += 0.00731f) {
    const float expected = static_cast<float>(std::exp(static_cast<double>(x)));
    worst = std::max(worst, ulp_distance(detail::exp_portable(x), expected));
  }
  EXPECT_LE(worst, 1);
  EXPECT_EQ(detail::exp_portable(0.0f), 1.0f);
  EXPECT_EQ(detail::exp_portable(-kInf), 0.0f);
  EXPECT_EQ(detail::exp_portable(kInf), kInf);
  EXPECT_EQ(detail::exp_portable(89.0f), kInf);
  EXPECT_TRUE(std::isnan(detail::exp_portable(std::nanf(""))));
  // Subnormal results are right too (2^n applied in two halves).
  EXPECT_LE(ulp_distance(detail::exp_portable(-100.0f), static_cast<float>(std::exp(-100.0))), 1);
  EXPECT_EQ(detail::exp_portable(-104.0f), 0.0f);
}

MOESLIM_AVX512 void exp_avx512_array(const float* x, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    _mm512_mask_storeu_ps(out + i, m, detail::exp_avx512(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

TEST(KernelExp, Avx512ExpIsBitIdenticalToPortable) {
  if (testing::runnable_isas().size() < 2) GTEST_SKIP() << "no AVX-512";
  // Every 997th float bit pattern (both signs, all exponents: specials, subnormals, out of range).
  std::vector<float> x;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << 32); b += 997) {
    float f;
    const auto bits = static_cast<std::uint32_t>(b);
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  std::vector<float> simd(x.size());
  exp_avx512_array(x.data(), simd.data(), static_cast<std::int64_t>(x.size()));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float p = detail::exp_portable(x[i]);
    const bool same = std::isnan(p) ? std::isnan(simd[i]) : testing::bits_of(p) == testing::bits_of(simd[i]);
    if (!same && ++mismatches < 5) ADD_FAILURE() << "exp(" << x[i] << "): portable " << p << " avx512 " << simd[i];
  }
  EXPECT_EQ(mismatches, 0u);
}

// ---------------------------------------------------------------------------------------------- rms_norm

std::vector<double> rms_norm_double(const std::vector<float>& x, std::int64_t n, const std::vector<float>& w,
                                    double eps) {
  std::vector<double> out(x.size());
  for (std::size_t r = 0; r < x.size() / n; ++r) {
    double ss = 0;
    for (std::int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (std::int64_t i = 0; i < n; ++i) out[r * n + i] = w[i] * (x[r * n + i] * inv);
  }
  return out;
}

TEST(RmsNorm, MatchesDoubleWithinAFewUlpForF32AndBf16Weights) {
  for (std::int64_t n : kLengths) {
    const std::int64_t rows = 3;
    const std::vector<float> x = random_floats(static_cast<std::size_t>(rows * n), 1 + n, -3.0f, 3.0f);
    const std::vector<std::uint16_t> wb = random_bf16(static_cast<std::size_t>(n), 2 + n, 2.0f);
    std::vector<float> wf(wb.size());
    for (std::size_t i = 0; i < wb.size(); ++i) wf[i] = bf16_to_f32(wb[i]);
    const std::vector<double> ref = rms_norm_double(x, n, wf, 1e-6);
    for (KernelIsa isa : testing::runnable_isas()) {
      ScopedKernelIsa scoped(isa);
      std::vector<float> out_f(x.size()), out_b(x.size());
      rms_norm(x.data(), rows, n, wf.data(), 1e-6f, out_f.data());
      rms_norm(x.data(), rows, n, wb.data(), 1e-6f, out_b.data());
      EXPECT_EQ(out_f, out_b);  // widening bf16 is exact, so the weight type cannot matter
      for (std::size_t i = 0; i < x.size(); ++i) {
        // Roundings: sum (n terms, relative ≲ n·2^-24 worst case), ÷n, +eps, sqrt, 1/, x·r, ·w.
        EXPECT_NEAR(out_f[i], ref[i], std::fabs(ref[i]) * (8 + n / 4) * 0x1p-24 + 1e-30) << "n=" << n;
      }
    }
  }
}

TEST(RmsNorm, PathsAreBitIdenticalAndInPlaceWorks) {
  for (std::int64_t n : kLengths) {
    const std::vector<float> x = random_floats(static_cast<std::size_t>(5 * n), 7 + n, -10.0f, 10.0f);
    const std::vector<float> w = random_floats(static_cast<std::size_t>(n), 8 + n);
    std::vector<std::vector<float>> results;
    for (KernelIsa isa : testing::runnable_isas()) {
      ScopedKernelIsa scoped(isa);
      std::vector<float> out(x.size());
      rms_norm(x.data(), 5, n, w.data(), 1e-6f, out.data());
      std::vector<float> in_place = x;
      rms_norm(in_place.data(), 5, n, w.data(), 1e-6f, in_place.data());
      EXPECT_EQ(in_place, out);
      results.push_back(out);
    }
    for (const auto& r : results) EXPECT_EQ(r, results.front()) << "n=" << n;
  }
}

TEST(RmsNorm, ZeroRowGivesZerosNotNaN) {
  const std::vector<float> x(64, 0.0f), w(64, 1.0f);
  std::vector<float> out(64, 1.0f);
  rms_norm(x.data(), 1, 64, w.data(), 1e-6f, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

// ---------------------------------------------------------------------------------------------- RoPE

TEST(Rope, InvFreqFollowsPyTorchFloat32Formula) {
  for (std::int64_t d : {64, 128}) {
    for (double theta : {10000.0, 1000000.0}) {
      const std::vector<float> inv = rope_inv_freq(d, theta);
      ASSERT_EQ(inv.size(), static_cast<std::size_t>(d / 2));
      EXPECT_EQ(inv[0], 1.0f);
      for (std::int64_t i = 0; i < d / 2; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(d);  // float32, as torch
        const double exact = 1.0 / std::pow(theta, static_cast<double>(exponent));
        EXPECT_LE(ulp_distance(inv[i], static_cast<float>(exact)), 1) << "i=" << i;
      }
    }
  }
}

TEST(Rope, RotatesHalvesWithFloatAnglesLikeHf) {
  const std::int64_t tokens = 7, heads = 3, d = 64;
  const double theta = 1000000.0;
  const std::vector<std::int64_t> positions = {0, 1, 2, 5, 100, 4095, 100000};
  const std::vector<float> x = random_floats(static_cast<std::size_t>(tokens * heads * d), 3);
  const std::vector<float> inv = rope_inv_freq(d, theta);
  std::vector<std::vector<float>> results;
  for (KernelIsa isa : testing::runnable_isas()) {
    ScopedKernelIsa scoped(isa);
    std::vector<float> y = x;
    rope_rotate_half(y.data(), tokens, heads, d, positions.data(), theta);
    for (std::int64_t t = 0; t < tokens; ++t) {
      for (std::int64_t h = 0; h < heads; ++h) {
        for (std::int64_t i = 0; i < d / 2; ++i) {
          // The angle is the float32 product (HF: inv_freq @ positions in float32); cos/sin in double here.
          const float angle = static_cast<float>(positions[t]) * inv[i];
          const double c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
          const std::size_t a = static_cast<std::size_t>((t * heads + h) * d + i), b = a + d / 2;
          const double ya = x[a] * c - x[b] * s, yb = x[b] * c + x[a] * s;
          const double tol = 4e-7 * (std::fabs(x[a]) + std::fabs(x[b]));
          EXPECT_NEAR(y[a], ya, tol);
          EXPECT_NEAR(y[b], yb, tol);
        }
      }
    }
    results.push_back(y);
  }
  for (const auto& r : results) EXPECT_EQ(r, results.front());
  // Position 0 is the identity.
  std::vector<float> y0(x.begin(), x.begin() + heads * d);
  rope_rotate_half(y0.data(), 1, heads, d, positions.data(), theta);
  EXPECT_TRUE(std::equal(y0.begin(), y0.end(), x.begin()));
}

TEST(Rope, TableAppliesToStridedRows) {
  const std::int64_t tokens = 5, heads = 2, d = 32, stride = 3 * heads * d;  // e.g. q inside a fused qkv
  const std::vector<std::int64_t> positions = {3, 4, 5, 6, 7};
  const std::vector<float> packed_in = random_floats(static_cast<std::size_t>(tokens * heads * d), 4);
  std::vector<float> packed = packed_in;
  std::vector<float> strided(static_cast<std::size_t>(tokens * stride), 9.0f);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::copy_n(packed_in.begin() + t * heads * d, heads * d, strided.begin() + t * stride);
  }
  const RopeTable table(positions.data(), tokens, d, 10000.0);
  table.apply(packed.data(), heads);
  table.apply(strided.data(), heads, stride);
  for (std::int64_t t = 0; t < tokens; ++t) {
    for (std::int64_t j = 0; j < stride; ++j) {
      const float v = strided[t * stride + j];
      EXPECT_EQ(v, j < heads * d ? packed[t * heads * d + j] : 9.0f);
    }
  }
}

// ---------------------------------------------------------------------------------------------- SiLU

TEST(SiluMul, MatchesDoubleAndPathsAreBitIdentical) {
  std::vector<float> gate = random_floats(1000, 5, -20.0f, 20.0f);
  gate.insert(gate.end(), {0.0f, -0.0f, 90.0f, -90.0f, -200.0f, 200.0f, 1e-30f});
  const std::vector<float> up = random_floats(gate.size(), 6, -2.0f, 2.0f);
  std::vector<std::vector<float>> results;
  for (KernelIsa isa : testing::runnable_isas()) {
    ScopedKernelIsa scoped(isa);
    std::vector<float> out(gate.size());
    silu_mul(gate.data(), up.data(), out.data(), static_cast<std::int64_t>(gate.size()));
    for (std::size_t i = 0; i < gate.size(); ++i) {
      const double g = gate[i];
      // exp(-g) overflows float32 for g < -88.7, so silu is -0 there (as in PyTorch), not a tiny number.
      const double e = static_cast<float>(std::exp(-g));
      const double expected = g / (1.0 + e) * up[i];
      EXPECT_NEAR(out[i], expected, std::fabs(expected) * 4e-7 + 1e-37) << "gate " << g;
    }
    results.push_back(out);
  }
  for (const auto& r : results) EXPECT_EQ(r, results.front());
}

TEST(SiluMul, FusedGateUpLayout) {
  const std::int64_t rows = 4, inter = 37;
  const std::vector<float> gate_up = random_floats(static_cast<std::size_t>(rows * 2 * inter), 7, -4.0f, 4.0f);
  std::vector<float> fused(static_cast<std::size_t>(rows * inter)), separate(fused.size());
  silu_mul_fused(gate_up.data(), rows, inter, fused.data());
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up.data() + r * 2 * inter;
    silu_mul(g, g + inter, separate.data() + r * inter, inter);
  }
  EXPECT_EQ(fused, separate);
}

// ---------------------------------------------------------------------------------------------- MoE rows

TEST(MoeRows, GatherCopiesTheChosenRows) {
  const std::int64_t cols = 19;
  const std::vector<float> x = random_floats(6 * cols, 11);
  const std::vector<std::int32_t> rows = {4, 0, 5};
  std::vector<float> out(rows.size() * cols);
  gather_rows(x.data(), cols, rows.data(), 3, out.data());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::int64_t j = 0; j < cols; ++j) EXPECT_EQ(out[i * cols + j], x[rows[i] * cols + j]);
  }
  EXPECT_THROW(gather_rows(x.data(), 0, rows.data(), 3, out.data()), Error);
}

TEST(MoeRows, AddWeightedRowsRoundsTheProductThenAddsOnEveryPath) {
  const std::int64_t cols = 37, n = 3;
  const std::vector<float> src = random_floats(n * cols, 12, -3.0f, 3.0f);
  const std::vector<float> base = random_floats(5 * cols, 13, -3.0f, 3.0f);
  const std::vector<std::int32_t> rows = {2, 0, 4};
  const std::vector<float> weights = {0.3f, 0.7f, 0.123f};
  std::vector<float> want = base;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      const float product = src[i * cols + j] * weights[i];  // rounded to float, then added
      want[rows[i] * cols + j] = want[rows[i] * cols + j] + product;
    }
  }
  for (KernelIsa isa : testing::runnable_isas()) {
    ScopedKernelIsa scoped(isa);
    std::vector<float> dst = base;
    add_weighted_rows(src.data(), n, cols, rows.data(), weights.data(), dst.data());
    EXPECT_EQ(dst, want) << kernel_isa_name(isa);
  }
}

TEST(MoeRows, AddRowsAddsElementwiseOverTheThreads) {
  const std::int64_t rows = 300, cols = 301;  // over the size at which the rows are spread over threads
  const std::vector<float> src = random_floats(rows * cols, 14, -3.0f, 3.0f);
  const std::vector<float> base = random_floats(rows * cols, 15, -3.0f, 3.0f);
  std::vector<float> want = base;
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = want[i] + src[i];
  std::vector<float> dst = base;
  add_rows(src.data(), rows, cols, dst.data());
  EXPECT_EQ(dst, want);
  EXPECT_THROW(add_rows(src.data(), rows, 0, dst.data()), Error);
}

// ---------------------------------------------------------------------------------------------- softmax

TEST(Softmax, MatchesDoubleAndPathsAreBitIdentical) {
  for (std::int64_t n : kLengths) {
    const std::int64_t rows = 4;
    std::vector<float> x = random_floats(static_cast<std::size_t>(rows * n), 9 + n, -30.0f, 30.0f);
    if (n > 3) x[2] = -kInf;  // a masked entry gets probability 0
    std::vector<std::vector<float>> results;
    for (KernelIsa isa : testing::runnable_isas()) {
      ScopedKernelIsa scoped(isa);
      std::vector<float> out(x.size());
      softmax_rows(x.data(), rows, n, out.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * n;
        // x − max is a float subtraction in PyTorch too; its rounding (up to 2^-18 at |60|) is part of the
        // definition, so the reference takes it from float and does the rest in double.
        const float mx = *std::max_element(xr, xr + n);
        const auto shifted = [&](std::int64_t i) { return static_cast<double>(xr[i] - mx); };
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += std::exp(shifted(i));
        double total = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const double expected = std::exp(shifted(i)) / sum;
          EXPECT_NEAR(out[r * n + i], expected, expected * 1e-6 + 1e-38);
          total += out[r * n + i];
        }
        EXPECT_NEAR(total, 1.0, 1e-6);
      }
      if (n > 3) {
        EXPECT_EQ(out[2], 0.0f);
      }
      std::vector<float> in_place = x;
      softmax_rows(in_place.data(), rows, n, in_place.data());
      EXPECT_EQ(in_place, out);
      results.push_back(out);
    }
    for (const auto& r : results) EXPECT_EQ(r, results.front()) << "n=" << n;
  }
}

TEST(Softmax, EqualLogitsGiveUniformAndHugeLogitsStayFinite) {
  std::vector<float> x = {3.0f, 3.0f, 3.0f, 3.0f, 1e30f, -1e30f, 1e30f, 0.0f};
  std::vector<float> out(8);
  softmax_rows(x.data(), 2, 4, out.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], 0.25f);
  EXPECT_EQ(out[4], 0.5f);
  EXPECT_EQ(out[5], 0.0f);
  EXPECT_EQ(out[6], 0.5f);
  EXPECT_EQ(out[7], 0.0f);
}

// ---------------------------------------------------------------------------------------------- top-k

TEST(TopK, TiesGoToTheLowerIndex) {
  const std::vector<float> x = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f, 0.5f};
  std::vector<std::int32_t> idx(4);
  std::vector<float> val(4);
  topk_rows(x.data(), 1, 6, 2, idx.data(), val.data());
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 2);
  EXPECT_EQ(val[0], 3.0f);
  topk_rows(x.data(), 1, 6, 4, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<std::int32_t>{1, 2, 4, 3}));
  EXPECT_EQ(val, (std::vector<float>{3.0f, 3.0f, 3.0f, 2.0f}));
  // All equal: the first k indices.
  const std::vector<float> flat(10, 0.125f);
  topk_rows(flat.data(), 1, 10, 4, idx.data(), nullptr);
  EXPECT_EQ(idx, (std::vector<std::int32_t>{0, 1, 2, 3}));
}

TEST(TopK, MatchesStableSortOnRouterLikeRows) {
  // bf16-rounded values so ties occur, as with a bf16 router (128 experts, top 8).
  const std::int64_t rows = 200, n = 128, k = 8;
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows * n), 11, -4.0f, 4.0f);
  for (float& v : x) v = round_to_bf16(v) > 3.0f ? 3.0f : round_to_bf16(v);
  std::vector<std::int32_t> idx(static_cast<std::size_t>(rows * k));
  std::vector<float> val(idx.size());
  topk_rows(x.data(), rows, n, k, idx.data(), val.data());
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<std::int32_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[r * n + a] > x[r * n + b]; });
    for (std::int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(idx[r * k + j], order[j]) << "row " << r;
      EXPECT_EQ(val[r * k + j], x[r * n + order[j]]);
    }
  }
}

TEST(TopK, NaNRanksLastAndBadKThrows) {
  const std::vector<float> x = {std::nanf(""), -kInf, 1.0f, std::nanf("")};
  std::vector<std::int32_t> idx(3);
  topk_rows(x.data(), 1, 4, 3, idx.data(), nullptr);
  EXPECT_EQ(idx, (std::vector<std::int32_t>{2, 1, 0}));
  EXPECT_THROW(topk_rows(x.data(), 1, 4, 5, idx.data(), nullptr), Error);
  EXPECT_THROW(topk_rows(x.data(), 1, 4, 0, idx.data(), nullptr), Error);
}

}  // namespace
}  // namespace moeslim::kernels
