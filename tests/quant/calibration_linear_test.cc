// StaticCalibrationLinear (§4.5): each batch updates the running-mean observer first and is then computed with
// the runtime's integer arithmetic at the updated parameters.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "model/quantized_linear.h"
#include "quant/calibration_linear.h"
#include "quant/linear_quantizer.h"

namespace moeslim::quant {
namespace {

TEST(CalibrationLinear, ObservesThenComputesLikeTheRuntimeAtTheCurrentParameters) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t out = 16, in = 32, rows = 5;
  Tensor w = Tensor::zeros(DType::kF32, {out, in});
  for (std::size_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = round_to_bf16(0.05f * normal(rng));
  Tensor bias = Tensor::zeros(DType::kF32, {out});
  for (std::int64_t i = 0; i < out; ++i) bias.mutable_data<float>()[i] = round_to_bf16(normal(rng));
  const QuantizedLinear weights = quantize_linear_weight("q_proj", QuantScheme::kW8A8, w, bias, DType::kBF16);

  StaticCalibrationLinear linear(weights, /*include_padding=*/false, DType::kBF16);
  std::vector<float> x(rows * in), y(rows * out), expected(rows * out);
  EXPECT_THROW(linear.forward(x.data(), rows, y.data()), Error);  // nothing observed yet

  MinMaxMeanObserver observer(false, DType::kBF16);
  for (int batch = 0; batch < 3; ++batch) {
    for (float& v : x) v = (batch + 1) * normal(rng);
    linear.observe(x.data(), rows, in, nullptr);
    observer.observe(x.data(), rows, in, nullptr);
    linear.forward(x.data(), rows, y.data());

    QuantizedLinear now = weights;
    set_static_activation(now, observer.params(), DType::kBF16);
    const auto runtime = model::make_w8a8_static_linear(now.weight, now.input_scale.data<float>()[0],
                                                        now.input_offset.data<float>()[0], now.deq_scale,
                                                        now.quant_bias);
    runtime->forward(x.data(), rows, expected.data());
    EXPECT_EQ(y, expected) << "batch " << batch;
  }
  EXPECT_EQ(linear.batches(), 3);
  EXPECT_EQ(linear.quantized().input_scale.data<float>()[0], observer.params().scale);
  EXPECT_EQ(linear.quantized().input_offset.data<float>()[0], observer.params().offset);
}

}  // namespace
}  // namespace moeslim::quant
