// A float linear to a W8A8 QuantizedLinear (spec §4.3 weights, §4.6 deq_scale and quant_bias):
//   deq[n] = float32(bf16(input_scale · s_n)),   quant_bias[n] = rne(b[n] / deq[n] − Σ_k q[n,k] · input_offset)
// checked on a hand-worked layer, and the runtime identity y ≈ deq ⊙ (x_q·qᵀ + quant_bias) ≈ x·Wᵀ + b on a
// random layer with an error bound derived from the rounding steps.
#include "quant/linear_quantizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

constexpr model::ModuleId kQProj{0, model::ModuleRole::kQProj};

using testing::codes_of;
using testing::f32_matrix;
using testing::f32_vector;
using testing::floats_of;

// Rows [1, −0.5, 0.25] and [−0.75, 0.125, 0]: scales bf16(1/127) = 0.00787353515625, bf16(0.75/127) =
// 0.00592041015625; codes [127, −64, 32] (−63.504 → bf16 −63.5 → rne −64) and [−126, 21, 0] (−126.68 → −126.5
// → −126); code sums 95 and −105. Activation params of the range [−1, 3]: scale 0.0157470703125, offset −64.
const std::vector<float> kW = {1.0f, -0.5f, 0.25f, -0.75f, 0.125f, 0.0f};
const ActivationParams kAct{0.0157470703125f, -64.0f};

TEST(LinearQuantizer, WeightPartHoldsCodesScalesAndTheFloatBias) {
  const QuantizedLinear q =
      quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(2, 3, kW), f32_vector({0.5f, -0.25f}), DType::kBF16);
  EXPECT_EQ(q.module, kQProj);
  EXPECT_EQ(q.scheme, QuantScheme::kW8A8);
  EXPECT_EQ(q.weight.dtype(), DType::kI8);
  EXPECT_EQ(codes_of(q.weight), (std::vector<std::int8_t>{127, -64, 32, -126, 21, 0}));
  EXPECT_EQ(floats_of(q.weight_scale), (std::vector<float>{0.00787353515625f, 0.00592041015625f}));
  EXPECT_EQ(floats_of(q.bias), (std::vector<float>{0.5f, -0.25f}));
  EXPECT_TRUE(q.input_scale.empty());  // activation fields wait for calibration
  EXPECT_TRUE(q.deq_scale.empty());
}

TEST(LinearQuantizer, DeqScaleAndQuantBiasWithBias) {
  QuantizedLinear q =
      quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(2, 3, kW), f32_vector({0.5f, -0.25f}), DType::kBF16);
  set_static_activation(q, kAct, DType::kBF16);
  EXPECT_EQ(floats_of(q.input_scale), (std::vector<float>{kAct.scale}));
  EXPECT_EQ(floats_of(q.input_offset), (std::vector<float>{kAct.offset}));
  // deq: 0.0157470703125 · 0.00787353515625 = 1.23985e-4 → bf16 1.239776611328125e-4 (the product is rounded).
  ASSERT_EQ(q.deq_scale.dtype(), DType::kF32);
  EXPECT_EQ(floats_of(q.deq_scale), (std::vector<float>{1.239776611328125e-4f, 9.34600830078125e-05f}));
  EXPECT_NE(q.deq_scale.data<float>()[0], kAct.scale * 0.00787353515625f);
  // quant_bias: 0.5/deq0 = 4032.98, − 95·(−64) → 10112.98 → 10113;  −0.25/deq1 = −2674.94 − 6720 → −9395.
  ASSERT_EQ(q.quant_bias.dtype(), DType::kI32);
  EXPECT_EQ(q.quant_bias.data<std::int32_t>()[0], 10113);
  EXPECT_EQ(q.quant_bias.data<std::int32_t>()[1], -9395);
}

TEST(LinearQuantizer, QuantBiasWithoutBiasIsMinusCodeSumTimesOffset) {
  QuantizedLinear q = quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(2, 3, kW), Tensor(), DType::kBF16);
  set_static_activation(q, kAct, DType::kBF16);
  EXPECT_EQ(q.quant_bias.data<std::int32_t>()[0], 95 * 64);
  EXPECT_EQ(q.quant_bias.data<std::int32_t>()[1], -105 * 64);
  EXPECT_EQ(floats_of(q.deq_scale), (std::vector<float>{1.239776611328125e-4f, 9.34600830078125e-05f}));
}

TEST(LinearQuantizer, QuantBiasRoundsHalfToEven) {
  // One weight 127/128 gives s = 2^-7 exactly; with input_scale 1 and offset 0, deq = 2^-7 and the correction
  // is 0, so quant_bias = rne(b·128): b = 2.5/128 → 2, 3.5/128 → 4, −2.5/128 → −2 (half away from zero: 3, 4, −3).
  for (const auto& [b, expected] : {std::pair{2.5f, 2}, std::pair{3.5f, 4}, std::pair{-2.5f, -2}}) {
    QuantizedLinear q = quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(1, 1, {127.0f / 128.0f}),
                                               f32_vector({b / 128.0f}), DType::kBF16);
    set_static_activation(q, ActivationParams{1.0f, 0.0f}, DType::kBF16);
    ASSERT_EQ(q.deq_scale.data<float>()[0], 1.0f / 128.0f);
    EXPECT_EQ(q.quant_bias.data<std::int32_t>()[0], expected) << b;
  }
}

TEST(LinearQuantizer, SchemesAndShapesAreChecked) {
  QuantizedLinear dyn =
      quantize_linear_weight(kQProj, QuantScheme::kW8A8Dynamic, f32_matrix(2, 3, kW), Tensor(), DType::kBF16);
  EXPECT_EQ(codes_of(dyn.weight), (std::vector<std::int8_t>{127, -64, 32, -126, 21, 0}));
  EXPECT_THROW(set_static_activation(dyn, kAct, DType::kBF16), Error);  // dynamic layers have no static params
  EXPECT_THROW(quantize_linear_weight(kQProj, QuantScheme::kFloat, f32_matrix(2, 3, kW), Tensor(), DType::kBF16),
               Error);
  EXPECT_THROW(quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(2, 3, kW), f32_vector({1.0f}),
                                      DType::kBF16),
               Error);
}

TEST(LinearQuantizer, RuntimeIdentityApproximatesTheFloatLayer) {
  // y_rt[n] = deq_n·(Σ_k x_q[k]·q[n,k] + quant_bias[n]) with x_q = clamp(rne(x/scale + offset), −128, 127).
  // Writing x̂ = (x_q − offset)·scale and ŵ = q·s_n: y_rt = (deq_n / (scale·s_n))·Σ x̂·ŵ + b + deq_n·e, |e| ≤ ½,
  // and deq_n / (scale·s_n) is within 2^-8 of 1 (one bf16 rounding, 8 significant bits). With |x̂ − x| ≤ scale and |ŵ − W| ≤ s_n
  // (generous: rne plus the quotient's bf16 step) the error is bounded by the sum below.
  std::mt19937 rng(5);
  const std::int64_t in = 24, out = 6, rows = 5;
  const std::vector<float> w = testing::random_bf16_values(out * in, rng, 0.1f);
  const std::vector<float> b = testing::random_bf16_values(out, rng, 0.3f);
  std::uniform_real_distribution<float> u(-1.5f, 2.5f);
  std::vector<float> x(rows * in);
  for (float& v : x) v = round_to_bf16(u(rng));
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  const ActivationParams act = asymmetric_int8_params(*lo, *hi, DType::kBF16);

  QuantizedLinear q = quantize_linear_weight(kQProj, QuantScheme::kW8A8, f32_matrix(out, in, w), f32_vector(b),
                                             DType::kBF16);
  set_static_activation(q, act, DType::kBF16);
  const std::int8_t* codes = q.weight.data<std::int8_t>();
  double err2 = 0, ref2 = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t n = 0; n < out; ++n) {
      const double sn = q.weight_scale.data<float>()[n], deq = q.deq_scale.data<float>()[n];
      double acc = 0, ref = b[n], bound = deq / 2 + 1e-6, mag = 0;
      for (std::int64_t k = 0; k < in; ++k) {
        const float xv = x[r * in + k], wv = w[n * in + k];
        const double xq = std::clamp(std::nearbyint(xv / act.scale + act.offset), -128.0f, 127.0f);
        acc += xq * codes[n * in + k];
        ref += static_cast<double>(xv) * wv;
        bound += std::fabs(xv) * sn + std::fabs(wv) * act.scale + act.scale * sn;
        mag += (std::fabs(xv) + act.scale) * (std::fabs(wv) + sn);
      }
      const double y = deq * (acc + q.quant_bias.data<std::int32_t>()[n]);
      EXPECT_LE(std::fabs(y - ref), bound + mag * std::ldexp(1.0, -8)) << "row " << r << " out " << n;
      err2 += (y - ref) * (y - ref);
      ref2 += ref * ref;
    }
  }
  EXPECT_LT(std::sqrt(err2 / ref2), 0.03);  // and overall it is a close approximation, not just bounded
}

}  // namespace
}  // namespace moeslim::quant
