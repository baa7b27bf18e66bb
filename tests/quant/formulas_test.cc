// The quantization formulas of docs/msmodelslim-algorithms.md §4 on small hand-made tensors, with
// expected values worked out by hand from the spec's text (bf16 steps spelled out in the comments).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "quant/activation_quant.h"
#include "quant/linear_quantizer.h"
#include "quant/observers.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {
namespace {

constexpr model::ModuleId kQProj{0, model::ModuleRole::kQProj};
constexpr model::ModuleId kOProj{0, model::ModuleRole::kOProj};

Tensor matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& values) {
  Tensor t = Tensor::zeros(DType::kF32, {rows, cols});
  std::copy(values.begin(), values.end(), t.mutable_data<float>());
  return t;
}

std::vector<int> codes_of(const ChannelQuantizedWeight& q) {
  const auto* c = q.codes.data<std::int8_t>();
  return std::vector<int>(c, c + q.codes.numel());
}

TEST(WeightQuant, QuotientIsRoundedToBf16BeforeTheInteger) {
  // max|W| = 12.6875 → s = bf16(12.6875/127 = 0.0999015) = 0.10009765625.
  // 6.0625/s = 60.566 → bf16 (step 0.25 in [32,64)) = 60.5 → half to even = 60; float32 math would give 61.
  // 12.6875/s = 126.75 → bf16 (step 0.5) = 127.0 → 127.
  const ChannelQuantizedWeight q = quantize_weight_int8_per_channel(matrix(1, 3, {6.0625f, -12.6875f, 0.0f}),
                                                                    DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], 0.10009765625f);
  EXPECT_EQ(codes_of(q), (std::vector<int>{60, -127, 0}));
  EXPECT_EQ(std::nearbyint(6.0625f / 0.10009765625f), 61.0f);  // what skipping the bf16 step would give
}

TEST(WeightQuant, ClampIsSymmetricPlusMinus127) {
  // max|W| = 0.0830078125 → s = 0.000652313232421875; a/s rounds to bf16 127.5 → 128 → clamped to 127, and
  // the negative side to −127 (never −128).
  const ChannelQuantizedWeight q =
      quantize_weight_int8_per_channel(matrix(2, 1, {0.0830078125f, -0.0830078125f}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], 0.000652313232421875f);
  EXPECT_EQ(codes_of(q), (std::vector<int>{127, -127}));
}

TEST(WeightQuant, AllZeroRowGetsTheEpsilonScale) {
  const ChannelQuantizedWeight q = quantize_weight_int8_per_channel(matrix(1, 4, {0, 0, 0, 0}), DType::kBF16);
  EXPECT_EQ(q.scale.data<float>()[0], kScaleEpsilon);
  EXPECT_EQ(codes_of(q), (std::vector<int>{0, 0, 0, 0}));
}

TEST(WeightQuant, RejectsNonFiniteWeightsNamingTheLinear) {
  try {
    quantize_linear_weight(model::ModuleId::expert_proj(0, model::ModuleRole::kUpProj, 3), QuantScheme::kW8A8Dynamic,
                           matrix(2, 2, {1, 2, NAN, 4}), Tensor(), DType::kBF16);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.3.up_proj.weight");
    EXPECT_NE(e.detail().find("row 1"), std::string::npos) << e.what();
  }
}

TEST(WeightQuant, VectorAndPortablePathsAgreeBitForBitOnBf16Weights) {
  if (kernels::best_kernel_isa() != kernels::KernelIsa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> values(37 * 301);  // odd width: the masked tail
  for (float& v : values) v = round_to_bf16(normal(rng));
  values[5] = 0.5f;  // an outlier in row 0
  const Tensor w = matrix(37, 301, values);
  const ChannelQuantizedWeight fast = quantize_weight_int8_per_channel(w, DType::kBF16);
  kernels::set_kernel_isa(kernels::KernelIsa::kPortable);
  const ChannelQuantizedWeight portable = quantize_weight_int8_per_channel(w, DType::kBF16);
  kernels::set_kernel_isa(kernels::best_kernel_isa());
  EXPECT_EQ(codes_of(fast), codes_of(portable));
  for (std::int64_t n = 0; n < 37; ++n) EXPECT_EQ(fast.scale.data<float>()[n], portable.scale.data<float>()[n]);
}

TEST(ActivationParams, MixedSignRange) {
  // range 4 → scale = bf16(4/255 = 0.015686) = 0.0157470703125; mn/scale = −63.504 → bf16 −63.5 → rne −64;
  // offset = −128 + 64.
  const ActivationParams p = asymmetric_int8_params(-1.0f, 3.0f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.0157470703125f);
  EXPECT_EQ(p.offset, -64.0f);
}

TEST(ActivationParams, OneSidedRangesIncludeZero) {
  // All positive: mn clamps to 0, scale = bf16(2/255) = 0.00787353515625, offset −128.
  ActivationParams p = asymmetric_int8_params(0.5f, 2.0f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.00787353515625f);
  EXPECT_EQ(p.offset, -128.0f);
  // All negative: mx clamps to 0; −2/scale = −254.02 → bf16 −254 → offset −128 + 254.
  p = asymmetric_int8_params(-2.0f, -0.5f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.00787353515625f);
  EXPECT_EQ(p.offset, 126.0f);
  // Nothing but zeros: the epsilon scale.
  p = asymmetric_int8_params(0.0f, 0.0f, DType::kBF16);
  EXPECT_EQ(p.scale, kScaleEpsilon);
  EXPECT_EQ(p.offset, -128.0f);
}

TEST(ActivationParams, DtypeMeanRoundsTheSumThenTheQuotient) {
  // Σ = 0.6 (float32) → bf16 0.6015625 → /3 = 0.2005208 → bf16 0.2001953125.
  EXPECT_EQ(dtype_mean({0.1f, 0.2f, 0.3f}, DType::kBF16), 0.2001953125f);
}

TEST(Observers, StaticRangeIsTheMeanOfPerBatchExtremesWithoutPads) {
  MinMaxMeanObserver o(/*include_padding=*/false, DType::kBF16);
  const std::vector<float> b1 = {-1, 2, 100, -100};  // second row is a pad: ignored
  const std::uint8_t real1[] = {1, 0};
  o.observe(b1.data(), 2, 2, real1);
  const std::vector<float> b2 = {-3, 4};
  o.observe(b2.data(), 1, 2, nullptr);
  const std::uint8_t pads_only[] = {0};
  o.observe(b2.data(), 1, 2, pads_only);  // no real row: not a batch
  EXPECT_EQ(o.batches(), 2);
  EXPECT_EQ(o.min(), -2.0f);  // mean(−1, −3), not the global −3
  EXPECT_EQ(o.max(), 3.0f);   // mean(2, 4)

  MinMaxMeanObserver with_pads(/*include_padding=*/true, DType::kBF16);
  with_pads.observe(b1.data(), 2, 2, real1);
  EXPECT_EQ(with_pads.min(), -100.0f);
  EXPECT_EQ(with_pads.max(), 100.0f);
}

TEST(Observers, ChannelStatisticsPerChannelAndNonFiniteRejected) {
  ChannelStatsObserver o(/*include_padding=*/false);
  const std::vector<float> x = {1, -5, -2, 3, 50, 50};
  const std::uint8_t real[] = {1, 1, 0};
  o.observe(x.data(), 3, 2, real);
  EXPECT_EQ(o.max(), (std::vector<float>{1, 3}));
  EXPECT_EQ(o.min(), (std::vector<float>{-2, -5}));
  EXPECT_EQ(o.abs_max(), (std::vector<float>{2, 5}));
  const std::vector<float> bad = {1, INFINITY};
  EXPECT_THROW(o.observe(bad.data(), 1, 2, nullptr), Error);
}

TEST(StaticLinear, DeqScaleAndQuantBiasFollowSection4_6) {
  // One row, weight [1.27, −0.635, 0.3175] → s = bf16(0.01) = 0.010009765625; codes by hand below.
  QuantizedLinear l = quantize_linear_weight(kQProj, QuantScheme::kW8A8, matrix(1, 3, {1.2734375f, -0.63671875f, 0.318359375f}),
                                             matrix(1, 1, {0.5f}).reshaped({1}), DType::kBF16);
  const float s = l.weight_scale.data<float>()[0];
  const auto* q = l.weight.data<std::int8_t>();
  const ActivationParams p{0.0157470703125f, -64.0f};
  set_static_activation(l, p, DType::kBF16);
  const float deq = round_to_bf16(p.scale * s);
  EXPECT_EQ(l.deq_scale.data<float>()[0], deq);
  const float correction = static_cast<float>(q[0] + q[1] + q[2]) * p.offset;
  EXPECT_EQ(l.quant_bias.data<std::int32_t>()[0], static_cast<std::int32_t>(std::nearbyint(0.5f / deq - correction)));
  EXPECT_EQ(l.input_scale.data<float>()[0], p.scale);
  EXPECT_EQ(l.input_offset.data<float>()[0], p.offset);
}

TEST(StaticLinear, RuntimeIdentityApproximatesTheFloatLinear) {
  // y ≈ deq ⊙ (x_q·qᵀ + quant_bias) must track x·Wᵀ + b for activations inside the calibrated range.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::int64_t out = 8, in = 64;
  std::vector<float> w(out * in), b(out), x(in);
  for (float& v : w) v = round_to_bf16(0.1f * u(rng));
  for (float& v : b) v = round_to_bf16(u(rng));
  for (float& v : x) v = 2.0f * u(rng);
  QuantizedLinear l = quantize_linear_weight(kOProj, QuantScheme::kW8A8, matrix(out, in, w),
                                             matrix(1, out, b).reshaped({out}), DType::kBF16);
  const ActivationParams p = asymmetric_int8_params(-2.0f, 2.0f, DType::kBF16);
  set_static_activation(l, p, DType::kBF16);
  for (std::int64_t n = 0; n < out; ++n) {
    double exact = b[n];
    std::int64_t acc = l.quant_bias.data<std::int32_t>()[n];
    for (std::int64_t k = 0; k < in; ++k) {
      exact += static_cast<double>(x[k]) * w[n * in + k];
      const float xq = std::clamp(std::nearbyint(x[k] / p.scale + p.offset), -128.0f, 127.0f);
      acc += static_cast<std::int64_t>(xq) * l.weight.data<std::int8_t>()[n * in + k];
    }
    const double y = l.deq_scale.data<float>()[n] * static_cast<double>(acc);
    EXPECT_NEAR(y, exact, 0.05) << "row " << n;
  }
}

}  // namespace
}  // namespace moeslim::quant
