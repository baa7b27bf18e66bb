// StaticCalibrationLinear (spec §4.5): each batch first updates the running-mean observer, then is computed by
// the W8A8 runtime at the parameters as they stand after that update. Checked against a separate
// MinMaxMeanObserver, set_static_activation and model::make_w8a8_static_linear on the same batches.
#include "quant/calibration_linear.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "model/quantized_linear.h"
#include "quant/linear_quantizer.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::f32_matrix;
using testing::f32_vector;
using testing::floats_of;

constexpr std::int64_t kIn = 16, kOut = 5, kRows = 4;

QuantizedLinear random_weights(std::mt19937& rng) {
  return quantize_linear_weight({0, model::ModuleRole::kQProj}, QuantScheme::kW8A8,
                                f32_matrix(kOut, kIn, testing::random_bf16_values(kOut * kIn, rng, 0.1f)),
                                f32_vector(testing::random_bf16_values(kOut, rng, 0.2f)), DType::kBF16);
}

// Batches with different ranges (so the running mean moves) and a pad row holding an outlier.
std::vector<std::vector<float>> batches(std::mt19937& rng) {
  std::vector<std::vector<float>> out;
  for (const float spread : {1.0f, 3.0f, 0.5f}) {
    std::vector<float> b = testing::random_bf16_values(kRows * kIn, rng, spread, 0.2f);
    b[kIn * (kRows - 1)] = 40.0f;  // last row is a pad (see kReal)
    out.push_back(std::move(b));
  }
  return out;
}
const std::uint8_t kReal[kRows] = {1, 1, 1, 0};

std::vector<float> run(const model::Linear& l, const std::vector<float>& x) {
  std::vector<float> y(kRows * kOut);
  l.forward(x.data(), kRows, y.data());
  return y;
}

TEST(StaticCalibrationLinear, ForwardAndResultBeforeAnyBatchAreErrors) {
  std::mt19937 rng(1);
  StaticCalibrationLinear l(random_weights(rng), false, DType::kBF16);
  std::vector<float> x(kRows * kIn, 0.5f), y(kRows * kOut);
  EXPECT_THROW(l.forward(x.data(), kRows, y.data()), Error);
  EXPECT_THROW(l.quantized(), Error);
  EXPECT_EQ(l.in_features(), kIn);
  EXPECT_EQ(l.out_features(), kOut);
}

TEST(StaticCalibrationLinear, EachBatchIsComputedAtTheRunningMeanParametersIncludingItself) {
  std::mt19937 rng(2);
  const QuantizedLinear weights = random_weights(rng);
  StaticCalibrationLinear l(weights, false, DType::kBF16);
  MinMaxMeanObserver reference_observer(false, DType::kBF16);
  for (const std::vector<float>& b : batches(rng)) {
    l.observe(b.data(), kRows, kIn, kReal);
    reference_observer.observe(b.data(), kRows, kIn, kReal);
    const ActivationParams p = reference_observer.params();

    QuantizedLinear expected = weights;
    set_static_activation(expected, p, DType::kBF16);
    const QuantizedLinear& got = l.quantized();
    EXPECT_EQ(floats_of(got.input_scale), std::vector<float>{p.scale});
    EXPECT_EQ(floats_of(got.input_offset), std::vector<float>{p.offset});
    EXPECT_EQ(floats_of(got.deq_scale), floats_of(expected.deq_scale));
    const auto qb = [](const QuantizedLinear& q) {
      return std::vector<std::int32_t>(q.quant_bias.data<std::int32_t>(),
                                       q.quant_bias.data<std::int32_t>() + q.quant_bias.numel());
    };
    EXPECT_EQ(qb(got), qb(expected));

    // Bit-exact with the runtime's W8A8 linear at those parameters.
    const auto runtime = model::make_w8a8_static_linear(weights.weight, p.scale, p.offset, expected.deq_scale,
                                                        expected.quant_bias);
    EXPECT_EQ(run(l, b), run(*runtime, b)) << "batch " << l.batches();
  }
  EXPECT_EQ(l.batches(), 3);
}

TEST(StaticCalibrationLinear, PadOnlyBatchLeavesTheParametersUnchanged) {
  std::mt19937 rng(3);
  StaticCalibrationLinear l(random_weights(rng), false, DType::kBF16);
  const std::vector<std::vector<float>> bs = batches(rng);
  l.observe(bs[0].data(), kRows, kIn, kReal);
  const float scale = l.quantized().input_scale.data<float>()[0];
  const std::vector<float> before = run(l, bs[1]);
  const std::uint8_t pads[kRows] = {0, 0, 0, 0};
  l.observe(bs[1].data(), kRows, kIn, pads);
  EXPECT_EQ(l.batches(), 1);
  EXPECT_EQ(l.quantized().input_scale.data<float>()[0], scale);
  EXPECT_EQ(run(l, bs[1]), before);
}

TEST(StaticCalibrationLinear, NeedsW8A8Codes) {
  std::mt19937 rng(4);
  QuantizedLinear dynamic = random_weights(rng);
  dynamic.scheme = QuantScheme::kW8A8Dynamic;
  EXPECT_THROW(StaticCalibrationLinear(dynamic, false, DType::kBF16), Error);
}

}  // namespace
}  // namespace moeslim::quant
