// Per-output-channel int8 weight quantization against docs/msmodelslim-algorithms.md §4.3:
//   s_n = max(bf16(max_k |W[n,k]| / 127), eps32),   q[n,k] = clamp(rne(bf16(W[n,k] / s_n)), −127, 127).
// Hand-worked rows pin each step (the bf16 scale, the eps floor, the bf16 rounding of the quotient, half-to-even,
// the symmetric clamp); random matrices check both kernel paths against the formula written out in the test.
#include "quant/weight_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "kernels/cpu_features.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::bf16_matrix;
using testing::codes_of;
using testing::f32_matrix;
using testing::floats_of;
using testing::kEps32;
using testing::reference_weight_quant;

// bf16(1/127): 1/127 = 0.0078740157… rounds down to 1.0078125·2^-7 = 0.00787353515625.
constexpr float kScaleOfOne = 0.00787353515625f;

class ScopedIsa {
 public:
  explicit ScopedIsa(kernels::KernelIsa isa) { kernels::set_kernel_isa(isa); }
  ~ScopedIsa() { kernels::set_kernel_isa(kernels::best_kernel_isa()); }
};

std::vector<kernels::KernelIsa> available_isas() {
  std::vector<kernels::KernelIsa> isas = {kernels::KernelIsa::kPortable};
  if (kernels::best_kernel_isa() == kernels::KernelIsa::kAvx512) isas.push_back(kernels::KernelIsa::kAvx512);
  return isas;
}

// Quantizes on every kernel path this CPU has, expects them to agree bit for bit, returns the portable result.
ChannelQuantizedWeight quantize_on_every_path(const Tensor& w, DType dt) {
  std::vector<ChannelQuantizedWeight> results;
  for (const kernels::KernelIsa isa : available_isas()) {
    ScopedIsa scoped(isa);
    results.push_back(quantize_weight_int8_per_channel(w, dt));
    EXPECT_EQ(codes_of(results.back().codes), codes_of(results.front().codes)) << kernels::kernel_isa_name(isa);
    EXPECT_EQ(floats_of(results.back().scale), floats_of(results.front().scale)) << kernels::kernel_isa_name(isa);
  }
  return std::move(results.front());
}

TEST(WeightQuant, ScaleIsBf16OfRowAbsMaxOver127) {
  // Row 0's max is 1.0 (bf16(1/127) = 0.00787353515625); row 1's max is |−0.75| (a negative extreme counts).
  const auto q =
      quantize_on_every_path(f32_matrix(2, 3, {1.0f, -0.5f, 0.25f, -0.75f, 0.125f, 0.0f}), DType::kBF16);
  EXPECT_EQ(q.scale.dtype(), DType::kF32);
  EXPECT_EQ(q.scale.data<float>()[0], kScaleOfOne);
  EXPECT_EQ(q.scale.data<float>()[0], round_to_bf16(1.0f / 127.0f));
  EXPECT_EQ(q.scale.data<float>()[1], 0.00592041015625f);
  // The scale is not the float32 quotient: bf16 rounding is visible.
  EXPECT_NE(q.scale.data<float>()[0], 1.0f / 127.0f);
}

TEST(WeightQuant, AllZeroRowGetsEps32ScaleAndZeroCodes) {
  const auto q = quantize_on_every_path(f32_matrix(2, 3, {0, 0, 0, 1.0f, 0, 0}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], kEps32);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{0, 0, 0, 127, 0, 0}));
}

TEST(WeightQuant, TinyRowIsFlooredAtEps32) {
  // bf16(1e-6)/127 ≈ 7.9e-9 < eps32, so s = eps32 and the code is rne(bf16(bf16(1e-6)/2^-23)) = rne(8.375) = 8.
  const float w = round_to_bf16(1e-6f);
  const auto q = quantize_on_every_path(f32_matrix(1, 2, {w, -w}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], kEps32);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{8, -8}));
}

TEST(WeightQuant, QuotientIsRoundedToBf16BeforeIntegerRounding) {
  // With s = bf16(1/127): 0.515625/s = 65.488 → bf16 65.5 → rne 66 (float32 math: 65);
  // 0.76171875/s = 96.744 → bf16 96.5 → rne 96 (float32 math: 97); −0.75 row below: −126.68 → −126.5 → −126.
  ASSERT_EQ(std::nearbyint(0.515625f / kScaleOfOne), 65.0f);  // the premise: plain float32 would differ
  ASSERT_EQ(std::nearbyint(0.76171875f / kScaleOfOne), 97.0f);
  const auto q = quantize_on_every_path(
      f32_matrix(2, 4, {1.0f, 0.515625f, 0.76171875f, -0.76171875f, -0.75f, 0.0f, 0.0f, 0.0f}), DType::kBF16);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{127, 66, 96, -96, -126, 0, 0, 0}));

  // With F32 as the model dtype there is no intermediate rounding: the float32 codes.
  const auto f = quantize_on_every_path(f32_matrix(1, 3, {1.0f, 0.515625f, 0.76171875f}), DType::kF32);
  EXPECT_EQ(f.scale.data<float>()[0], 1.0f / 127.0f);
  EXPECT_EQ(codes_of(f.codes), (std::vector<std::int8_t>{127, 65, 97}));
}

TEST(WeightQuant, RoundsHalfToEven) {
  // max = 127/128 makes s = 2^-7 exactly, so the quotients are exact halves: 2.5→2, 3.5→4, −2.5→−2, 0.5→0,
  // −1.5→−2 (round-half-away-from-zero would give 3, 4, −3, 1, −2).
  const float u = 1.0f / 128.0f;
  const auto q = quantize_on_every_path(
      f32_matrix(1, 6, {127 * u, 2.5f * u, 3.5f * u, -2.5f * u, 0.5f * u, -1.5f * u}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], u);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{127, 2, 4, -2, 0, -2}));
}

TEST(WeightQuant, ClampIsSymmetricMinus127To127) {
  // The scale can round down by up to 2^-8 relative, so the row's extreme can land above 127.25: max 1.328125 →
  // s = bf16(0.0104577) = 0.01043701171875, 1.328125/s = 127.2515 → bf16 127.5 → rne 128 → clamped to 127; the
  // negative extreme to −127, where an int8 [−128, 127] clamp would keep −128.
  ASSERT_EQ(round_to_bf16(1.328125f / 0.01043701171875f), 127.5f);  // premise
  const auto q = quantize_on_every_path(f32_matrix(1, 3, {1.328125f, -1.328125f, 0.5f}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], 0.01043701171875f);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{127, -127, 48}));  // 47.906 → bf16 48 → 48
}

TEST(WeightQuant, ClampIsSymmetricForF16SubnormalScales) {
  // An F16 model whose scale is subnormal rounds down much further: max = 311·2^-24, max/127 = 2.45·2^-24 rounds
  // to the f16 subnormal 2·2^-24 = eps32, and the quotients are ±155.5 → rne ±156 → clamped to ±127.
  const float m = std::ldexp(311.0f, -24);
  const auto q = quantize_on_every_path(f32_matrix(1, 3, {m, -m, m / 2}), DType::kF16);
  EXPECT_EQ(q.scale.data<float>()[0], kEps32);
  EXPECT_EQ(codes_of(q.codes), (std::vector<std::int8_t>{127, -127, 78}));  // 77.75 → f16 77.75 → 78
}

TEST(WeightQuant, Bf16AndF32InputTensorsGiveTheSameResult) {
  std::mt19937 rng(7);
  const std::int64_t rows = 5, cols = 37;
  const std::vector<float> w = testing::random_bf16_values(rows * cols, rng, 0.05f);
  const auto a = quantize_weight_int8_per_channel(f32_matrix(rows, cols, w), DType::kBF16);
  const auto b = quantize_weight_int8_per_channel(bf16_matrix(rows, cols, w), DType::kBF16);
  EXPECT_EQ(codes_of(a.codes), codes_of(b.codes));
  EXPECT_EQ(floats_of(a.scale), floats_of(b.scale));
}

TEST(WeightQuant, MatchesSpecFormulaOnRandomMatricesOnEveryKernelPath) {
  // Widths around the 16-lane SIMD block; a row with an outlier makes most of its quotients small.
  std::mt19937 rng(11);
  for (const std::int64_t cols : {1, 15, 16, 17, 50}) {
    const std::int64_t rows = 9;
    std::vector<float> w = testing::random_bf16_values(rows * cols, rng, 0.02f);
    w[0] = 0.9f;
    for (const DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
      const auto ref = reference_weight_quant(w, rows, cols, dt);
      for (const kernels::KernelIsa isa : available_isas()) {
        ScopedIsa scoped(isa);
        const auto q = quantize_weight_int8_per_channel(f32_matrix(rows, cols, w), dt);
        EXPECT_EQ(codes_of(q.codes), ref.codes) << "cols " << cols << " isa " << kernels::kernel_isa_name(isa);
        EXPECT_EQ(floats_of(q.scale), ref.scale) << "cols " << cols;
      }
    }
  }
}

TEST(WeightQuant, RejectsNonFiniteWeightsAndNonMatrices) {
  EXPECT_THROW(quantize_weight_int8_per_channel(f32_matrix(1, 2, {1.0f, NAN}), DType::kBF16), Error);
  EXPECT_THROW(quantize_weight_int8_per_channel(
                   f32_matrix(1, 2, {std::numeric_limits<float>::infinity(), 0.0f}), DType::kBF16),
               Error);
  EXPECT_THROW(quantize_weight_int8_per_channel(Tensor::zeros(DType::kF32, {4}), DType::kBF16), Error);
}

}  // namespace
}  // namespace moeslim::quant
