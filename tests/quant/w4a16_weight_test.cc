// W4A16's weights (quant/w4a16_weight.h, gptq.h): round_to_nearest is GPTQ with nothing to compensate, for
// groups and asymmetric grids; static groups keep the unupdated weights' parameters and contiguous groups under
// act_order (so no g_idx), and still compensate: the layer-output error is below round-to-nearest's; the
// QuantizedLinear carries codes, [out, groups] scales, zero points and its grid.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/w4a16_weight.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::bf16_matrix;
using testing::codes_of;
using testing::floats_of;
using testing::random_bf16_values;
using Floats = std::vector<float>;

constexpr std::int64_t kOut = 32, kIn = 128;

GptqOptions grid_options(std::int64_t group_size, bool symmetric, bool act_order = false, bool static_groups = false) {
  GptqOptions o = w4a16_options({group_size, symmetric}, DType::kBF16);
  o.act_order = act_order;
  o.static_groups = static_groups;
  return o;
}

// Correlated input rows with uneven channel magnitudes and a few channels 50x larger.
Floats input_rows(std::int64_t rows, std::int64_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kLatent = 12;
  Floats mix(kLatent * n);
  for (float& m : mix) m = normal(rng) / std::sqrt(static_cast<float>(kLatent));
  Floats x(rows * n), z(kLatent);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : z) v = normal(rng);
    for (std::int64_t c = 0; c < n; ++c) {
      float v = 0.1f * normal(rng);
      for (int l = 0; l < kLatent; ++l) v += z[l] * mix[l * n + c];
      x[r * n + c] = v * (c % 41 == 0 ? 50.0f : 1.0f + static_cast<float>(c % 5));
    }
  }
  return x;
}

Floats hessian_of(const Floats& x, std::int64_t rows, std::int64_t n) {
  HessianAccumulator acc(n);
  acc.add(x.data(), rows, n);
  const LargeVector<float> h = acc.hessian();
  return {h.begin(), h.end()};
}

// Σ (x·(W − Ŵ)ᵀ)² over the rows, Ŵ = (q − z)·s with contiguous groups.
double output_error(const Floats& w, const GptqResult& q, const Floats& x, std::int64_t rows) {
  const std::int64_t groups = q.scale.dim(1), gs = kIn / groups;
  Floats d(kOut * kIn);
  for (std::int64_t r = 0; r < kOut; ++r) {
    for (std::int64_t c = 0; c < kIn; ++c) {
      const std::int64_t g = r * groups + c / gs;
      const float z = q.zero_point.empty() ? 0.0f : q.zero_point.data<float>()[g];
      d[r * kIn + c] = w[r * kIn + c] - (q.codes.data<std::int8_t>()[r * kIn + c] - z) * q.scale.data<float>()[g];
    }
  }
  double e = 0.0;
  for (std::int64_t t = 0; t < rows; ++t) {
    for (std::int64_t r = 0; r < kOut; ++r) {
      double y = 0.0;
      for (std::int64_t c = 0; c < kIn; ++c) y += static_cast<double>(x[t * kIn + c]) * d[r * kIn + c];
      e += y * y;
    }
  }
  return e;
}

TEST(W4A16RoundToNearest, IsGptqWithADiagonalHessianForGroupsAndAsymmetricGrids) {
  std::mt19937 rng(11);
  const Tensor w = bf16_matrix(kOut, kIn, random_bf16_values(kOut * kIn, rng, 0.05f, 0.01f));
  Floats diagonal(kIn * kIn, 0.0f);
  for (std::int64_t i = 0; i < kIn; ++i) diagonal[i * kIn + i] = 1.0f + static_cast<float>(i % 7);
  for (const std::int64_t gs : {0, 32, 128}) {
    for (const bool symmetric : {true, false}) {
      const GptqResult rtn = round_to_nearest(w, grid_options(gs, symmetric));
      ASSERT_EQ(rtn.scale.shape(), (Shape{kOut, gs == 0 ? 1 : kIn / gs}));
      EXPECT_EQ(rtn.zero_point.empty(), symmetric);
      for (const bool act_order : {false, true}) {
        const GptqResult g = gptq_quantize(w, diagonal, grid_options(gs, symmetric, act_order, /*static=*/true));
        EXPECT_EQ(codes_of(g.codes), codes_of(rtn.codes)) << gs << " " << symmetric << " " << act_order;
        EXPECT_EQ(floats_of(g.scale), floats_of(rtn.scale));
        if (!symmetric) {
          EXPECT_EQ(floats_of(g.zero_point), floats_of(rtn.zero_point));
        }
        EXPECT_TRUE(g.group_index.empty()) << "static groups are contiguous: no g_idx";
      }
    }
  }
  // Codes stay on the int4 grid; an asymmetric zero point is an int4 code.
  const GptqResult a = round_to_nearest(w, grid_options(32, false));
  for (const std::int8_t c : codes_of(a.codes)) ASSERT_TRUE(c >= -8 && c <= 7);
  for (const float z : floats_of(a.zero_point)) ASSERT_TRUE(z >= -8 && z <= 7 && z == std::nearbyint(z));
}

TEST(W4A16StaticGroups, KeepTheUnupdatedWeightsParametersAndStillCompensate) {
  std::mt19937 rng(12);
  const Floats wv = random_bf16_values(kOut * kIn, rng, 0.05f);
  const Tensor w = bf16_matrix(kOut, kIn, wv);
  constexpr std::int64_t rows = 600;
  const Floats x = input_rows(rows, kIn, 5);
  const Floats h = hessian_of(x, rows, kIn);
  for (const bool symmetric : {true, false}) {
    const GptqResult rtn = round_to_nearest(w, grid_options(32, symmetric));
    const GptqResult fitted = gptq_quantize(w, h, grid_options(32, symmetric, /*act_order=*/true, /*static=*/true));
    EXPECT_EQ(floats_of(fitted.scale), floats_of(rtn.scale)) << "parameters from the weights before any update";
    EXPECT_NE(codes_of(fitted.codes), codes_of(rtn.codes));
    EXPECT_TRUE(fitted.group_index.empty());
    const double e_rtn = output_error(wv, rtn, x, rows), e_fit = output_error(wv, fitted, x, rows);
    EXPECT_LT(e_fit, 0.2 * e_rtn) << "symmetric " << symmetric;  // measured: below 0.05
    // The lazy (dynamic) groups of plain GPTQ without act_order compensate too.
    const GptqResult lazy = gptq_quantize(w, h, grid_options(32, symmetric));
    EXPECT_LT(output_error(wv, lazy, x, rows), 0.3 * e_rtn);  // measured: 0.08-0.09
  }
}

TEST(W4A16Linear, CarriesCodesScalesZeroPointsAndItsGrid) {
  std::mt19937 rng(13);
  const Tensor w = bf16_matrix(kOut, kIn, random_bf16_values(kOut * kIn, rng, 0.05f));
  const model::ModuleId module{1, model::ModuleRole::kOProj};
  const QuantizedLinear q = quantize_w4a16_minmax(module, w, {64, false}, DType::kBF16);
  EXPECT_EQ(q.scheme, QuantScheme::kW4A16);
  EXPECT_EQ(q.grid, (WeightGrid{64, false}));
  EXPECT_EQ(q.weight.shape(), (Shape{kOut, kIn}));
  EXPECT_EQ(q.weight_scale.shape(), (Shape{kOut, 2}));
  EXPECT_EQ(q.weight_zero_point.shape(), (Shape{kOut, 2}));
  EXPECT_TRUE(q.bias.empty());
  for (const float s : floats_of(q.weight_scale)) EXPECT_EQ(s, round_to_float_dtype(s, DType::kBF16));
  try {
    quantize_w4a16_minmax(module, w, {48, true}, DType::kBF16);
    FAIL() << "48 does not divide 128";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "model.layers.1.self_attn.o_proj.weight");
    EXPECT_NE(std::string(e.what()).find("does not divide"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moeslim::quant
