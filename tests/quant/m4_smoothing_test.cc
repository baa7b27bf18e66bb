// Anti-outlier m4 against docs/msmodelslim-algorithms.md §3.5–3.7, one subgraph at a time:
//   s = max(bf16(bf16(a^½) / bf16(w^½)), 1e-5) with a = bf16(max|x_c|), w = bf16(max(max|W[:,c]|, 1e-5));
//   norm → linears: γ' = bf16(γ/s), b_norm = bf16(−shift/s), shift = bf16(max+min)/2, bias = bf16(W_orig·shift),
//                   W' = bf16(W ⊙ s);
//   v → o (GQA):    r = bf16 mean of s over the q heads of a kv group, W_v' = bf16(W_v / r) per row,
//                   W_o' = bf16(W_o ⊙ repeat(r)) per column.
// The formulas are written out in the test from the spec text; the equivalences (the point of smoothing) are
// checked in float32 (float_dtype = F32), where they must hold to float tolerance. The whole-layer version of
// the equivalence is m4_layer_test.cc.
#include "quant/m4_smoothing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::f32_matrix;
using testing::f32_vector;
using testing::floats_of;

const float kMin = round_to_bf16(1e-5f);  // 1.0013580322265625e-05

// §3.5 step 2 for one channel, every step rounded to bf16.
float spec_scale(float a, float w) {
  const float aa = round_to_bf16(a), ww = round_to_bf16(std::max(w, 1e-5f));
  return std::max(round_to_bf16(round_to_bf16(std::sqrt(aa)) / round_to_bf16(std::sqrt(ww))), kMin);
}

ChannelStatsObserver stats_of(const std::vector<float>& rows, std::int64_t cols) {
  ChannelStatsObserver o(true);
  o.observe(rows.data(), static_cast<std::int64_t>(rows.size()) / cols, cols, nullptr);
  return o;
}

SmoothOptions f32_options() {
  SmoothOptions o;
  o.float_dtype = DType::kF32;
  return o;
}

TEST(M4SmoothScales, FollowTheSpecFormulaAndClamps) {
  // c0: 2/1 = 2.  c1: bf16(√2)=1.4140625 / bf16(√3)=1.734375 → 0.81640625.  c2: a = 0 → clamped to bf16(1e-5).
  // c3: w = 0 → 1e-5 → bf16(√bf16(1e-5)) = 0.0031585693359375 → 1/that = 316.6 → bf16 316.
  // c4: a = 3.99 is first rounded to bf16 3.984375: √ → 1.99609 → bf16 1.9921875 (from 3.99 it would be 2.0).
  const std::vector<float> s = smooth_scales({4, 2, 0, 1, 3.99f}, {1, 3, 0.5f, 0, 1}, SmoothOptions{});
  EXPECT_EQ(s, (std::vector<float>{2.0f, 0.81640625f, 1.0013580322265625e-05f, 316.0f, 1.9921875f}));
  for (std::size_t c = 0; c < s.size(); ++c) {
    EXPECT_EQ(s[c], spec_scale(std::vector<float>{4, 2, 0, 1, 3.99f}[c], std::vector<float>{1, 3, 0.5f, 0, 1}[c]));
  }
}

TEST(M4SmoothScales, GeneralAlphaInFloat32) {
  // s = a^α / w^(1−α): 16^0.75 / 16^0.25 = 8 / 2 = 4; 81^0.75 / 1^0.25 = 27.
  SmoothOptions o = f32_options();
  o.alpha = 0.75f;
  const std::vector<float> s = smooth_scales({16, 81}, {16, 1}, o);
  EXPECT_NEAR(s[0], 4.0f, 1e-6f);
  EXPECT_NEAR(s[1], 27.0f, 1e-5f);
}

TEST(M4NormToLinears, NormWeightNormBiasLinearBiasAndWeightsFollowTheSpec) {
  // Norm output statistics per channel: max {1, 1, 0.5, 0}, min {−2, −3, 0.25, 0}, max|x| {2, 3, 0.5, 0};
  // channel 3 never activates (a = 0 → s = bf16(1e-5)).
  const ChannelStatsObserver st = stats_of({1.0f, -3.0f, 0.5f, 0.0f,  //
                                            -2.0f, 1.0f, 0.25f, 0.0f},
                                           4);
  const std::vector<float> gamma = {1.0f, 0.5f, 2.0f, 1.5f};
  const std::vector<float> wq = {0.5f, -0.25f, 1.0f, 0.125f, -1.5f, 0.75f, 0.0f, 0.0625f};
  const std::vector<float> wk = {0.25f, 2.0f, -0.5f, 0.03125f};  // column 1's weight max comes from k_proj
  Tensor q = f32_matrix(2, 4, wq), k = f32_matrix(1, 4, wk);
  const NormLinearSmoothing r = smooth_norm_to_linears(f32_vector(gamma), {&q, &k}, st, SmoothOptions{});

  // w = max over both linears {1.5, 2, 1, 0.125}; s by hand: √2/√1.5 → 1.4140625/1.2265625 → 1.15625, ...
  const std::vector<float> s = {1.15625f, 1.2265625f, 0.70703125f, kMin};
  const std::vector<float> w_max = {1.5f, 2.0f, 1.0f, 0.125f}, a = {2.0f, 3.0f, 0.5f, 0.0f};
  const std::vector<float> shift = {-0.5f, -1.0f, 0.375f, 0.0f};  // bf16(max + min) / 2
  for (std::size_t c = 0; c < 4; ++c) {
    ASSERT_EQ(s[c], spec_scale(a[c], w_max[c])) << c;
    EXPECT_EQ(r.norm_weight.data<float>()[c], round_to_bf16(gamma[c] / s[c])) << c;
    EXPECT_EQ(r.norm_bias.data<float>()[c], round_to_bf16(-shift[c] / s[c])) << c;
  }
  // What the linears' input now is, (x − shift) / s, for whoever carries float-pass rows to it (GPTQ).
  EXPECT_EQ(r.shift, shift);
  EXPECT_EQ(r.scale, s);
  EXPECT_EQ(r.norm_weight.data<float>()[3], round_to_bf16(1.5f / kMin));  // huge γ' on the dead channel (§3.7)
  // Linear biases use the weights before the column scaling: bf16(Σ_c W[n,c]·shift_c).
  ASSERT_EQ(r.linear_biases.size(), 2u);
  EXPECT_EQ(floats_of(r.linear_biases[0]),
            (std::vector<float>{round_to_bf16(0.5f * -0.5f + -0.25f * -1.0f + 1.0f * 0.375f),
                                round_to_bf16(-1.5f * -0.5f + 0.75f * -1.0f + 0.0f)}));
  EXPECT_EQ(floats_of(r.linear_biases[1]),
            (std::vector<float>{round_to_bf16(0.25f * -0.5f + 2.0f * -1.0f + -0.5f * 0.375f)}));
  // W' = bf16(W ⊙ s), column by column, in place.
  for (std::size_t i = 0; i < wq.size(); ++i) EXPECT_EQ(q.data<float>()[i], round_to_bf16(wq[i] * s[i % 4])) << i;
  for (std::size_t i = 0; i < wk.size(); ++i) EXPECT_EQ(k.data<float>()[i], round_to_bf16(wk[i] * s[i % 4])) << i;
}

TEST(M4NormToLinears, SubgraphIsAnEquivalenceInFloat32) {
  // W'·(n(x)⊙γ' + b_norm) + W·shift = W·(n(x)⊙γ) for every input x, n = RMS normalisation, when no bf16 rounding
  // is applied. Channels have offsets (so the shift matters), one is an outlier and one is always zero.
  std::mt19937 rng(21);
  const std::int64_t hidden = 16, rows = 12, outs[] = {8, 4, 4};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * hidden), gamma(hidden);
  for (std::int64_t c = 0; c < hidden; ++c) gamma[c] = 1.0f + 0.2f * normal(rng);
  for (std::int64_t t = 0; t < rows; ++t)
    for (std::int64_t c = 0; c < hidden; ++c)
      x[t * hidden + c] = c == 5 ? 0.0f : (c == 2 ? 20.0f : 1.0f) * normal(rng) + 0.3f * static_cast<float>(c % 4);
  // Norm output y = n(x) ⊙ γ, the statistics' input.
  std::vector<double> nx(x.size());
  std::vector<float> y(x.size());
  for (std::int64_t t = 0; t < rows; ++t) {
    double ss = 0;
    for (std::int64_t c = 0; c < hidden; ++c) ss += double{x[t * hidden + c]} * x[t * hidden + c];
    const double inv = 1.0 / std::sqrt(ss / hidden + 1e-6);
    for (std::int64_t c = 0; c < hidden; ++c) {
      nx[t * hidden + c] = x[t * hidden + c] * inv;
      y[t * hidden + c] = static_cast<float>(nx[t * hidden + c] * gamma[c]);
    }
  }
  std::vector<Tensor> originals, smoothed;
  for (const std::int64_t o : outs) {
    originals.push_back(f32_matrix(o, hidden, testing::random_bf16_values(o * hidden, rng, 0.1f)));
    smoothed.push_back(originals.back().clone());
  }
  const NormLinearSmoothing r = smooth_norm_to_linears(f32_vector(gamma), {&smoothed[0], &smoothed[1], &smoothed[2]},
                                                       stats_of(y, hidden), f32_options());
  EXPECT_NE(floats_of(r.norm_bias), std::vector<float>(hidden, 0.0f));  // the shift is really exercised

  for (std::size_t l = 0; l < originals.size(); ++l) {
    const float* w = originals[l].data<float>();
    const float* w2 = smoothed[l].data<float>();
    double worst = 0, scale = 0;
    for (std::int64_t t = 0; t < rows; ++t) {
      for (std::int64_t n = 0; n < outs[l]; ++n) {
        double ref = 0, got = r.linear_biases[l].data<float>()[n];
        for (std::int64_t c = 0; c < hidden; ++c) {
          const double nc = nx[t * hidden + c];
          ref += w[n * hidden + c] * nc * gamma[c];
          got += w2[n * hidden + c] * (nc * r.norm_weight.data<float>()[c] + r.norm_bias.data<float>()[c]);
        }
        worst = std::max(worst, std::fabs(got - ref));
        scale = std::max(scale, std::fabs(ref));
      }
    }
    EXPECT_LT(worst, 1e-5 * scale) << "linear " << l;
  }
}

// v_proj [kv·hd, hidden] → o_proj [hidden, q·hd] with 4 q heads, 2 kv heads, head_dim 4 (g = 2).
constexpr std::int64_t kQ = 4, kKv = 2, kHd = 4, kHidden = 3;

TEST(M4VToO, GroupMeanDividesVRowsAndMultipliesOColumns) {
  // W_o's row 0 is all ±1 and the rest smaller, so w_j = 1 and s_j = bf16(√a_j). a is chosen so that
  // kv group 0, d 0 averages s = 2 (head 0) and 4 (head 1) → r = 3; d 1 averages 1 and 1.5 → 1.25.
  std::vector<float> a(kQ * kHd);
  std::mt19937 rng(9);
  for (float& v : a) v = round_to_bf16(std::uniform_real_distribution<float>(0.1f, 9.0f)(rng));
  a[0 * kHd + 0] = 4.0f, a[1 * kHd + 0] = 16.0f, a[0 * kHd + 1] = 1.0f, a[1 * kHd + 1] = 2.25f;
  a[3 * kHd + 2] = 0.0f;  // a dead channel: s = 1e-5 enters its group's mean
  std::vector<float> wo = testing::random_bf16_values(kHidden * kQ * kHd, rng, 0.2f);
  for (std::int64_t j = 0; j < kQ * kHd; ++j) wo[j] = j % 3 == 0 ? -1.0f : 1.0f;
  const std::vector<float> wv = testing::random_bf16_values(kKv * kHd * kHidden, rng, 0.5f);
  Tensor v = f32_matrix(kKv * kHd, kHidden, wv), o = f32_matrix(kHidden, kQ * kHd, wo);
  smooth_v_to_o(v, o, stats_of(a, kQ * kHd), kQ, kKv, kHd, SmoothOptions{});

  std::vector<float> w(kQ * kHd, 0.0f);  // max_i |W_o[i, j]|
  for (std::int64_t i = 0; i < kHidden; ++i)
    for (std::int64_t j = 0; j < kQ * kHd; ++j) w[j] = std::max(w[j], std::fabs(wo[i * kQ * kHd + j]));
  ASSERT_EQ(w, std::vector<float>(kQ * kHd, 1.0f));
  std::vector<float> r(kKv * kHd);
  for (std::int64_t k = 0; k < kKv; ++k)
    for (std::int64_t d = 0; d < kHd; ++d) {
      const std::int64_t j0 = (2 * k) * kHd + d, j1 = (2 * k + 1) * kHd + d;  // q heads 2k, 2k+1 share kv head k
      const float sum = spec_scale(a[j0], w[j0]) + spec_scale(a[j1], w[j1]);
      r[k * kHd + d] = round_to_bf16(round_to_bf16(sum) / 2.0f);  // torch's bf16 mean
    }
  EXPECT_EQ(r[0], 3.0f);
  EXPECT_EQ(r[1], 1.25f);
  for (std::int64_t n = 0; n < kKv * kHd; ++n)
    for (std::int64_t c = 0; c < kHidden; ++c)
      EXPECT_EQ(v.data<float>()[n * kHidden + c], round_to_bf16(wv[n * kHidden + c] / r[n])) << n << "," << c;
  for (std::int64_t i = 0; i < kHidden; ++i)
    for (std::int64_t j = 0; j < kQ * kHd; ++j) {
      const float rep = r[(j / kHd / 2) * kHd + j % kHd];  // q head j/kHd is served by kv head (j/kHd)/g
      EXPECT_EQ(o.data<float>()[i * kQ * kHd + j], round_to_bf16(wo[i * kQ * kHd + j] * rep)) << i << "," << j;
    }
}

TEST(M4VToO, GroupMeanRoundsTheSumToBf16BeforeDividing) {
  // g = 3 (6 q heads, 2 kv heads, head_dim 1; for g a power of two the two roundings coincide). With w = 1 and
  // a = (1, 1, 2): s = (1, 1, 1.4140625), Σ = 3.4140625 → bf16 3.40625 → /3 → bf16 1.1328125; the unrounded
  // sum would give bf16(1.138) = 1.140625. Group 1: s = (2, 2, 2) → r = 2.
  Tensor v = f32_matrix(2, 1, {1.0f, 1.0f}), o = f32_matrix(1, 6, {1, 1, 1, 1, 1, 1});
  const std::vector<float> divisor = smooth_v_to_o(v, o, stats_of({1, 1, 2, 4, 4, 4}, 6), 6, 2, 1, SmoothOptions{});
  EXPECT_EQ(floats_of(o), (std::vector<float>{1.1328125f, 1.1328125f, 1.1328125f, 2, 2, 2}));
  // o_proj's input channels are now divided by their kv head's r (what its columns were multiplied by).
  EXPECT_EQ(divisor, (std::vector<float>{1.1328125f, 1.1328125f, 1.1328125f, 2, 2, 2}));
  EXPECT_EQ(floats_of(v), (std::vector<float>{round_to_bf16(1.0f / 1.1328125f), 0.5f}));
}

TEST(M4VToO, AttentionLikeMixingIsPreservedInFloat32) {
  // o_in[h] = Σ_t p[h,t]·V[t, kv(h)] with V = x·W_vᵀ is linear in V within a head, so scaling kv group rows of
  // W_v by 1/r and the matching o_proj columns by r leaves y = W_o·o_in unchanged.
  std::mt19937 rng(13);
  const std::int64_t tokens = 5, queries = 3;
  const std::vector<float> x = testing::random_bf16_values(tokens * kHidden, rng, 1.0f);
  const std::vector<float> wv = testing::random_bf16_values(kKv * kHd * kHidden, rng, 0.5f);
  const std::vector<float> wo = testing::random_bf16_values(kHidden * kQ * kHd, rng, 0.5f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> p(queries * kQ * tokens);
  for (float& v : p) v = u(rng);

  const auto layer = [&](const Tensor& v_w, const Tensor& o_w, std::vector<float>* o_inputs) {
    std::vector<double> out(queries * kHidden, 0.0);
    for (std::int64_t qi = 0; qi < queries; ++qi) {
      std::vector<double> o_in(kQ * kHd, 0.0);
      for (std::int64_t h = 0; h < kQ; ++h)
        for (std::int64_t d = 0; d < kHd; ++d)
          for (std::int64_t t = 0; t < tokens; ++t) {
            double vt = 0;  // V[t, kv(h)·hd + d]
            for (std::int64_t c = 0; c < kHidden; ++c)
              vt += double{v_w.data<float>()[((h / 2) * kHd + d) * kHidden + c]} * x[t * kHidden + c];
            o_in[h * kHd + d] += p[(qi * kQ + h) * tokens + t] * vt;
          }
      if (o_inputs != nullptr) o_inputs->insert(o_inputs->end(), o_in.begin(), o_in.end());
      for (std::int64_t i = 0; i < kHidden; ++i)
        for (std::int64_t j = 0; j < kQ * kHd; ++j) out[qi * kHidden + i] += o_w.data<float>()[i * kQ * kHd + j] * o_in[j];
    }
    return out;
  };
  Tensor v = f32_matrix(kKv * kHd, kHidden, wv), o = f32_matrix(kHidden, kQ * kHd, wo);
  std::vector<float> o_inputs;
  const std::vector<double> ref = layer(v, o, &o_inputs);
  smooth_v_to_o(v, o, stats_of(o_inputs, kQ * kHd), kQ, kKv, kHd, f32_options());
  EXPECT_NE(floats_of(v), wv);  // the weights really moved
  const std::vector<double> got = layer(v, o, nullptr);
  double scale = 0;
  for (const double y : ref) scale = std::max(scale, std::fabs(y));
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-5 * scale) << i;
}

TEST(M4Smoothing, RejectsMissingStatisticsAndBadHeadCounts) {
  Tensor v = Tensor::zeros(DType::kF32, {kKv * kHd, kHidden}), o = Tensor::zeros(DType::kF32, {kHidden, kQ * kHd});
  const ChannelStatsObserver none(false);
  EXPECT_THROW(smooth_v_to_o(v, o, none, kQ, kKv, kHd, SmoothOptions{}), Error);
  const ChannelStatsObserver st = stats_of(std::vector<float>(kQ * kHd, 1.0f), kQ * kHd);
  Tensor o3 = Tensor::zeros(DType::kF32, {kHidden, 3 * kHd});
  const ChannelStatsObserver st3 = stats_of(std::vector<float>(3 * kHd, 1.0f), 3 * kHd);
  EXPECT_THROW(smooth_v_to_o(v, o3, st3, 3, kKv, kHd, SmoothOptions{}), Error);  // 3 q heads over 2 kv heads
  EXPECT_THROW(smooth_v_to_o(v, o, st3, kQ, kKv, kHd, SmoothOptions{}), Error);  // statistics of another width
  smooth_v_to_o(v, o, st, kQ, kKv, kHd, SmoothOptions{});                        // the consistent call works
  Tensor lin = Tensor::zeros(DType::kF32, {2, 4});
  EXPECT_THROW(smooth_norm_to_linears(f32_vector({1, 1, 1, 1}), {&lin}, none, SmoothOptions{}), Error);
  Tensor bf = Tensor::zeros(DType::kBF16, {2, 4});
  EXPECT_THROW(smooth_norm_to_linears(f32_vector({1, 1, 1, 1}), {&bf}, stats_of({1, 1, 1, 1}, 4), SmoothOptions{}),
               Error);
}

}  // namespace
}  // namespace moeslim::quant
