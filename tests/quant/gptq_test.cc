// GPTQ (quant/gptq.h) and its Hessian (quant/hessian.h):
//  * a hand-worked 2×4 layer whose codes follow the error compensation on paper;
//  * the float32 blocked algorithm against the textbook column-by-column recursion written out below in double
//    (explicit H⁻¹, updated after each column by removing that column), for several block sizes, groups,
//    act_order and the asymmetric grid: nearly all codes the same, the rest off by one (see expect_close);
//  * a diagonal Hessian (nothing to compensate) gives the v1 minmax quantizer's codes and scales exactly;
//  * the layer-output error is well below round-to-nearest's on inputs with a few massive channels, and within
//    1 % of the double reference's;
//  * dead columns, dampening, Hessians that are not positive definite, bad arguments;
//  * the accumulator against a naive double loop, the factors against double algebra (also with a diagonal
//    spanning 1e-2..1e6), and the same bits on 1 and 3 threads.
#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/scoped_threads.h"
#include "core/error.h"
#include "quant/hessian.h"
#include "quant/v1_weight_quant.h"
#include "quant/weight_quant.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using moeslim::testing::ScopedThreads;
using testing::bf16_matrix;
using testing::codes_of;
using testing::f32_matrix;
using testing::floats_of;
using testing::kEps32;
using testing::random_bf16_values;

using Codes = std::vector<std::int8_t>;
using Floats = std::vector<float>;
// The library's big matrices live in LargeVector (core/large_buffer.h); the tests compare plain vectors.
Floats floats(const LargeVector<float>& v) { return {v.begin(), v.end()}; }
LargeVector<float> large(const Floats& v) { return {v.begin(), v.end()}; }
using Doubles = std::vector<double>;

Doubles doubles(const Floats& v) { return {v.begin(), v.end()}; }

GptqOptions options(WeightBits bits, std::int64_t group_size = 0, bool act_order = false, bool symmetric = true,
                    std::int64_t block_size = 128) {
  GptqOptions o;
  o.bits = bits;
  o.group_size = group_size;
  o.act_order = act_order;
  o.symmetric = symmetric;
  o.block_size = block_size;
  return o;
}

// ---- the textbook algorithm, written out plainly ----

struct Grid {
  float lo, hi;
};
Grid grid(WeightBits bits) { return bits == WeightBits::kInt4 ? Grid{-8.0f, 7.0f} : Grid{-128.0f, 127.0f}; }

// gptq.h's grid: symmetric s = max(dt(max|w|/hi), dt(eps32)), z = 0; asymmetric from min(w,0) and max(w,0).
void reference_params(const std::vector<float>& v, const GptqOptions& o, float& s, float& z) {
  const DType dt = o.float_dtype;
  const Grid g = grid(o.bits);
  float mn = 0.0f, mx = 0.0f, amax = 0.0f;
  for (float x : v) {
    mn = std::min(mn, x);
    mx = std::max(mx, x);
    amax = std::max(amax, std::fabs(x));
  }
  if (o.symmetric) {
    s = std::max(round_to_float_dtype(amax / g.hi, dt), round_to_float_dtype(kEps32, dt));
    z = 0.0f;
  } else {
    const float levels = g.hi - g.lo;
    const float spread = round_to_float_dtype(mx / levels, dt) - round_to_float_dtype(mn / levels, dt);
    s = std::max(round_to_float_dtype(spread, dt), round_to_float_dtype(kEps32, dt));
    z = std::min(std::nearbyint(round_to_float_dtype(-mn / s, dt)) + g.lo, g.hi);
  }
}

float reference_code(float x, float s, float z, const GptqOptions& o) {
  const Grid g = grid(o.bits);
  return std::clamp(std::nearbyint(round_to_float_dtype(x / s, o.float_dtype)) + z, g.lo, g.hi);
}

// Gauss-Jordan without pivoting (the matrices are symmetric positive definite).
Doubles invert(Doubles a, std::int64_t n) {
  Doubles inv(a.size(), 0.0);
  for (std::int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (std::int64_t p = 0; p < n; ++p) {
    const double d = a[p * n + p];
    for (std::int64_t j = 0; j < n; ++j) {
      a[p * n + j] /= d;
      inv[p * n + j] /= d;
    }
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == p) continue;
      const double f = a[i * n + p];
      for (std::int64_t j = 0; j < n; ++j) {
        a[i * n + j] -= f * a[p * n + j];
        inv[i * n + j] -= f * inv[p * n + j];
      }
    }
  }
  return inv;
}

struct Quantized {
  Codes codes;      // [out, in], original column order
  Floats scale;     // [out, groups]
  Floats zero;      // [out, groups]
  std::vector<std::int64_t> order;
};

// Column by column: quantize column i of every row, spread its error over the later columns with the current
// inverse Hessian, then remove row and column i from that inverse (the OBS step). No blocks, no Cholesky.
Quantized reference_gptq(Floats w0, std::int64_t out, std::int64_t n, const Floats& hessian, const GptqOptions& o) {
  Doubles h = doubles(hessian);
  for (std::int64_t i = 0; i < n; ++i) {
    if (h[i * n + i] == 0.0) {
      h[i * n + i] = 1.0;
      for (std::int64_t r = 0; r < out; ++r) w0[r * n + i] = 0.0f;
    }
  }
  Quantized q;
  q.order.resize(n);
  std::iota(q.order.begin(), q.order.end(), 0);
  if (o.act_order) {
    std::stable_sort(q.order.begin(), q.order.end(),
                     [&](std::int64_t a, std::int64_t b) { return h[a * n + a] > h[b * n + b]; });
  }
  Doubles hp(n * n), w(out * n);
  double trace = 0.0;
  for (std::int64_t i = 0; i < n; ++i) trace += h[i * n + i];
  const double lambda = o.dampening * (trace / n);
  for (std::int64_t a = 0; a < n; ++a) {
    for (std::int64_t b = 0; b < n; ++b) hp[a * n + b] = h[q.order[a] * n + q.order[b]];
    hp[a * n + a] += lambda;
    for (std::int64_t r = 0; r < out; ++r) w[r * n + a] = w0[r * n + q.order[a]];
  }
  Doubles hinv = invert(hp, n);
  const std::int64_t gw = o.group_size > 0 ? o.group_size : n, groups = n / gw;
  q.codes.assign(out * n, 0);
  q.scale.assign(out * groups, 0.0f);
  q.zero.assign(out * groups, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % gw == 0) {
      for (std::int64_t r = 0; r < out; ++r) {
        Floats v(w.begin() + r * n + i, w.begin() + r * n + i + gw);
        reference_params(v, o, q.scale[r * groups + i / gw], q.zero[r * groups + i / gw]);
      }
    }
    const double d = hinv[i * n + i];
    for (std::int64_t r = 0; r < out; ++r) {
      const float s = q.scale[r * groups + i / gw], z = q.zero[r * groups + i / gw];
      const float c = reference_code(static_cast<float>(w[r * n + i]), s, z, o);
      q.codes[r * n + q.order[i]] = static_cast<std::int8_t>(c);
      const double err = (w[r * n + i] - (static_cast<double>(c) - z) * s) / d;
      for (std::int64_t j = i + 1; j < n; ++j) w[r * n + j] -= err * hinv[i * n + j];
    }
    for (std::int64_t j = i + 1; j < n; ++j) {
      for (std::int64_t k = i + 1; k < n; ++k) hinv[j * n + k] -= hinv[j * n + i] * hinv[i * n + k] / d;
    }
  }
  return q;
}

// ---- data ----

// Input rows whose channels have different magnitudes (so act_order has an order to find); `massive` channels
// are 50 times larger, like the massive activations of LLM hidden states. latent > 0: the channels mix `latent`
// shared factors (plus 10 % noise), correlated as real hidden states are; GPTQ's compensation works through
// these correlations (with independent channels H is nearly diagonal and there is little to compensate).
Floats input_rows(std::int64_t rows, std::int64_t n, std::uint32_t seed, int massive = 0, int latent = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Floats mix(static_cast<std::size_t>(latent) * n);
  for (float& m : mix) m = normal(rng) / std::sqrt(static_cast<float>(latent));
  Floats x(rows * n), z(latent);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : z) v = normal(rng);
    for (std::int64_t c = 0; c < n; ++c) {
      const float gain = c * 37 % n < massive ? 50.0f : 1.0f + static_cast<float>(c % 7);
      float v = normal(rng);
      if (latent > 0) {
        v *= 0.1f;
        for (int l = 0; l < latent; ++l) v += z[l] * mix[l * n + c];
      }
      x[r * n + c] = v * gain;
    }
  }
  return x;
}

Floats identity(std::int64_t n) {
  Floats id(n * n, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) id[i * n + i] = 1.0f;
  return id;
}

Floats hessian_of(const Floats& x, std::int64_t rows, std::int64_t n) {
  HessianAccumulator acc(n);
  acc.add(x.data(), rows, n);
  return floats(acc.hessian());
}



// (code − z)·s of every weight, the group of column c being c / group_size or group_index[c].
Doubles dequantize(const GptqResult& q, std::int64_t group_size) {
  const std::int64_t out = q.codes.dim(0), in = q.codes.dim(1), groups = q.scale.dim(1);
  const std::int64_t gw = group_size > 0 ? group_size : in;
  Doubles w(out * in);
  for (std::int64_t r = 0; r < out; ++r) {
    for (std::int64_t c = 0; c < in; ++c) {
      const std::int64_t g = q.group_index.empty() ? c / gw : q.group_index[c];
      const double z = q.zero_point.empty() ? 0.0 : q.zero_point.data<float>()[r * groups + g];
      w[r * in + c] = (q.codes.data<std::int8_t>()[r * in + c] - z) * q.scale.data<float>()[r * groups + g];
    }
  }
  return w;
}

// The same for the reference's result (its groups follow its quantization order).
Doubles dequantize(const Quantized& q, std::int64_t out, std::int64_t n, std::int64_t group_size) {
  const std::int64_t gw = group_size > 0 ? group_size : n, groups = n / gw;
  std::vector<std::int64_t> position(n);
  for (std::int64_t k = 0; k < n; ++k) position[q.order[k]] = k;
  Doubles w(out * n);
  for (std::int64_t r = 0; r < out; ++r) {
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int64_t g = r * groups + position[c] / gw;
      w[r * n + c] = (q.codes[r * n + c] - static_cast<double>(q.zero[g])) * q.scale[g];
    }
  }
  return w;
}

// Σ over rows and outputs of (x·(W − Ŵ)ᵀ)².
double output_error(const Floats& x, std::int64_t rows, const Floats& w, const Doubles& wq, std::int64_t out,
                    std::int64_t n) {
  double sum = 0.0;
  for (std::int64_t t = 0; t < rows; ++t) {
    for (std::int64_t o = 0; o < out; ++o) {
      double y = 0.0;
      for (std::int64_t c = 0; c < n; ++c) y += x[t * n + c] * (w[o * n + c] - wq[o * n + c]);
      sum += y * y;
    }
  }
  return sum;
}

// The float32 algorithm against the double reference. A code can differ only where a compensated weight w̃/s
// lies within float32 noise of a rounding boundary (the compensation is summed in another order and precision:
// ~1e-6 of a step here), and then by one; the rows' later codes follow the change, so a difference can cascade
// along its row. Measured on these cases: none (all 35k codes equal); 99.5 % leaves room for other CPUs'
// GEMM rounding. A wrong compensation moves far more: GPTQ itself differs from round-to-nearest in 15–35 % of
// these codes (int4), and group parameters taken from the partial sums instead of the recursion's weights
// (gptq.h) changed 1.4 %. Per-row scales come from the weights before any update, so they are exact; group
// scales and zero points are computed from compensated weights and may move by one step of their rounding (dt,
// or an integer).
void expect_close(const GptqResult& got, const Quantized& want, const std::string& what) {
  constexpr double kMinSame = 0.995;
  const Codes codes = codes_of(got.codes);
  ASSERT_EQ(codes.size(), want.codes.size()) << what;
  std::size_t same = 0;
  int worst = 0;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    same += codes[i] == want.codes[i];
    worst = std::max(worst, std::abs(codes[i] - want.codes[i]));
  }
  EXPECT_GE(static_cast<double>(same), kMinSame * static_cast<double>(codes.size())) << what;
  EXPECT_LE(worst, 1) << what;
  const Floats scales = floats_of(got.scale);
  const Floats zeros = got.zero_point.empty() ? Floats(want.zero.size(), 0.0f) : floats_of(got.zero_point);
  if (got.scale.dim(1) == 1) {
    EXPECT_EQ(scales, want.scale) << what;
    EXPECT_EQ(zeros, want.zero) << what;
    return;
  }
  std::size_t scales_same = 0;
  for (std::size_t i = 0; i < scales.size(); ++i) {
    scales_same += scales[i] == want.scale[i];
    EXPECT_NEAR(scales[i], want.scale[i], want.scale[i] / 64.0) << what << " scale " << i;  // one bf16 step: 1/128
    EXPECT_LE(std::fabs(zeros[i] - want.zero[i]), 1.0f) << what << " zero point " << i;
  }
  EXPECT_GE(static_cast<double>(scales_same), 0.95 * static_cast<double>(scales.size())) << what;
}

// ---- hand-worked ----

TEST(GptqHandWorked, TwoRowsFollowTheCompensationOnPaper) {
  // F32 weights, int4 symmetric. max|w| = 0.875, so s = 0.875/7 = 0.125 and, in units of s, row 0 is
  // u = [1.375, 2.375, −1.3125, 7] (row 1 is its negation). Round-to-nearest would give [1, 2, −1, 7].
  // H: a chain over columns 0–2, column 3 on its own; diag mean 4, dampening 0.25 → λ = 1:
  //   H + λI = [[5,2,0,0],[2,5,2,0],[0,2,5,0],[0,0,0,5]].
  // Column 0: q = 1, error e0 = 0.375. Row 0 of (H+λI)⁻¹ is ∝ [21, −10, 4, 0] (cofactors of the 3×3 chain,
  //   determinant 85), so w_j −= e0·Hinv_0j/Hinv_00: u1 += 10/21·3/8 = 5/28, u2 −= 4/21·3/8 = 1/14.
  //   u1 = 19/8 + 5/28 = 143/56 ≈ 2.554 → q = 3, e1 = 143/56 − 3 = −25/56.
  // Column 1: what remains of the inverse is ([[5,2],[2,5]])⁻¹ = [[5,−2],[−2,5]]/21 (plus column 3), so
  //   u2 −= e1·(−2/5): u2 = −21/16 − 1/14 + 2/5·(−25/56) = −21/16 − 1/14 − 5/28 = −25/16 = −1.5625 → q = −2.
  // Column 3 is uncoupled: q = 7.
  const Tensor w = f32_matrix(2, 4, {0.171875f, 0.296875f, -0.1640625f, 0.875f,  //
                                     -0.171875f, -0.296875f, 0.1640625f, -0.875f});
  const Floats h = {4, 2, 0, 0,  //
                    2, 4, 2, 0,  //
                    0, 2, 4, 0,  //
                    0, 0, 0, 4};
  for (std::int64_t block : {1, 2, 3, 128}) {
    GptqOptions o = options(WeightBits::kInt4, 0, false, true, block);
    o.dampening = 0.25;
    o.float_dtype = DType::kF32;
    const GptqHessian prepared = prepare_gptq_hessian(h, 4, o);
    EXPECT_EQ(prepared.lambda, 1.0);
    const GptqResult q = gptq_quantize(w, prepared, o);
    EXPECT_EQ(codes_of(q.codes), (Codes{1, 3, -2, 7, -1, -3, 2, -7})) << "block " << block;
    EXPECT_EQ(floats_of(q.scale), (Floats{0.125f, 0.125f}));
    EXPECT_TRUE(q.zero_point.empty());
    EXPECT_TRUE(q.group_index.empty());
    EXPECT_TRUE(q.order.empty());
  }
}

// ---- against the textbook recursion ----

struct ReferenceCase {
  const char* name;
  GptqOptions options;
};

TEST(GptqReference, BlockedAlgorithmMatchesTheColumnByColumnRecursion) {
  // The reference computes in double with the explicit inverse; the implementation in float32 with the factor
  // of H (gptq.h step 5): the same recursion, different rounding (expect_close says what that allows).
  constexpr std::int64_t out = 16, n = 64, rows = 200;
  std::mt19937 rng(7);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Tensor w = bf16_matrix(out, n, wv);
  const Floats h = hessian_of(input_rows(rows, n, 11), rows, n);
  const ReferenceCase cases[] = {
      {"int4 per row", options(WeightBits::kInt4)},
      {"int8 per row", options(WeightBits::kInt8)},
      {"int4 group 32", options(WeightBits::kInt4, 32)},
      {"int4 act_order", options(WeightBits::kInt4, 0, true)},
      {"int4 group 32 act_order", options(WeightBits::kInt4, 32, true)},
      {"int4 asymmetric", options(WeightBits::kInt4, 0, false, false)},
      {"int8 asymmetric group 32 act_order", options(WeightBits::kInt8, 32, true, false)},
  };
  int compensated = 0;
  for (const ReferenceCase& c : cases) {
    const Quantized want = reference_gptq(wv, out, n, h, c.options);
    // With H = I nothing is compensated (round-to-nearest): the case must differ from that to mean something.
    compensated += want.codes != reference_gptq(wv, out, n, identity(n), c.options).codes;
    // 24: blocks that neither divide nor contain the groups of 32, so a group starts inside a block; 40: a
    // sub-block cut short by a group's first column.
    for (std::int64_t block : {1, 8, 24, 40, 128}) {
      GptqOptions o = c.options;
      o.block_size = block;
      const GptqResult got = gptq_quantize(w, h, o);
      expect_close(got, want, std::string(c.name) + ", block " + std::to_string(block));
      if (o.act_order) {
        EXPECT_EQ(got.order, want.order) << c.name;
      }
    }
  }
  EXPECT_EQ(compensated, 7);
}

TEST(GptqReference, LargerLayerStaysCloseToTheDoubleRecursion) {
  // 64 rows × 512 columns (four blocks of 128, sub-blocks of 16, GEMM tiles), correlated inputs with massive
  // channels: the float32 rounding has far more chances to cross a boundary than above.
  constexpr std::int64_t out = 64, n = 512, rows = 1024;
  std::mt19937 rng(17);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Tensor w = bf16_matrix(out, n, wv);
  const Floats x = input_rows(rows, n, 19, /*massive=*/8, /*latent=*/32);
  const Floats h = hessian_of(x, rows, n);
  for (const GptqOptions& o : {options(WeightBits::kInt4), options(WeightBits::kInt4, 128, true)}) {
    const Quantized want = reference_gptq(wv, out, n, h, o);
    const GptqResult got = gptq_quantize(w, h, o);
    expect_close(got, want, o.act_order ? "group 128 act_order" : "per row");
    // The layer output error: within 1 % of the reference's (a code off by one here and there moves it by
    // ~0.1 %; losing the compensation of even one block would move it by tens of %).
    const double e_ref = output_error(x, rows, wv, dequantize(want, out, n, o.group_size), out, n);
    const double e_got = output_error(x, rows, wv, dequantize(got, o.group_size), out, n);
    EXPECT_NEAR(e_got, e_ref, 0.01 * e_ref) << (o.act_order ? "act_order" : "per row");
  }
}

// ---- no compensation: round-to-nearest of the v1 minmax quantizer ----

TEST(GptqRoundToNearest, DiagonalHessianGivesTheMinmaxQuantizer) {
  constexpr std::int64_t out = 24, n = 96;
  std::mt19937 rng(3);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Tensor w = bf16_matrix(out, n, wv);
  Floats h(n * n, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) h[i * n + i] = 1.0f + static_cast<float>(i % 5);  // uneven: act_order permutes
  for (WeightBits bits : {WeightBits::kInt4, WeightBits::kInt8}) {
    const ChannelQuantizedWeight rtn = quantize_weight_minmax_v1(w, {.bits = bits, .float_dtype = DType::kBF16});
    for (bool act_order : {false, true}) {
      const GptqResult q = gptq_quantize(w, h, options(bits, 0, act_order));
      EXPECT_EQ(codes_of(q.codes), codes_of(rtn.codes));
      EXPECT_EQ(floats_of(q.scale), floats_of(rtn.scale));
    }
    // Groups of 32: each group is the minmax quantizer on that slice of columns.
    const GptqResult q = gptq_quantize(w, h, options(bits, 32));
    for (std::int64_t g = 0; g < n / 32; ++g) {
      Floats slice;
      for (std::int64_t r = 0; r < out; ++r) {
        slice.insert(slice.end(), wv.begin() + r * n + g * 32, wv.begin() + r * n + g * 32 + 32);
      }
      const ChannelQuantizedWeight part =
          quantize_weight_minmax_v1(bf16_matrix(out, 32, slice), {.bits = bits, .float_dtype = DType::kBF16});
      for (std::int64_t r = 0; r < out; ++r) {
        EXPECT_EQ(q.scale.data<float>()[r * (n / 32) + g], part.scale.data<float>()[r]);
        for (std::int64_t c = 0; c < 32; ++c) {
          ASSERT_EQ(q.codes.data<std::int8_t>()[r * n + g * 32 + c], part.codes.data<std::int8_t>()[r * 32 + c]);
        }
      }
    }
  }
}

// msModelSlim v0's int8 weights: with nothing to compensate, the narrow range gives v0's per-channel quantizer
// exactly; with compensation, no code reaches −128.
TEST(GptqRoundToNearest, NarrowRangeGivesV0sInt8QuantizerAndStaysWithin127) {
  constexpr std::int64_t out = 24, n = 96;
  std::mt19937 rng(5);
  const Tensor w = bf16_matrix(out, n, random_bf16_values(out * n, rng, 0.05f));
  Floats diagonal(n * n, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) diagonal[i * n + i] = 1.0f + static_cast<float>(i % 3);
  GptqOptions o = options(WeightBits::kInt8, 0, true);
  o.narrow_range = true;
  const ChannelQuantizedWeight v0 = quantize_weight_int8_per_channel(w, DType::kBF16);
  const GptqResult rtn = gptq_quantize(w, diagonal, o);
  EXPECT_EQ(codes_of(rtn.codes), codes_of(v0.codes));
  EXPECT_EQ(floats_of(rtn.scale), floats_of(v0.scale));

  const GptqResult fitted = gptq_quantize(w, hessian_of(input_rows(400, n, 7), 400, n), o);
  const Codes codes = codes_of(fitted.codes);
  EXPECT_GE(*std::min_element(codes.begin(), codes.end()), -127);
  EXPECT_NE(codes, codes_of(v0.codes)) << "a dense Hessian compensates";

  o.symmetric = false;
  EXPECT_THROW(gptq_quantize(w, diagonal, o), Error) << "a narrow range is for symmetric codes";
}

// ---- the point of GPTQ: a smaller layer-output error ----

TEST(GptqLayerError, WellBelowRoundToNearestWithMassiveActivations) {
  constexpr std::int64_t out = 64, n = 128, rows = 512;
  std::mt19937 rng(5);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Tensor w = bf16_matrix(out, n, wv);
  const Floats x = input_rows(rows, n, 13, /*massive=*/4, /*latent=*/16);
  const Floats h = hessian_of(x, rows, n);
  const Floats id = identity(n);
  struct Case {
    const char* name;
    GptqOptions o;
  };
  for (const Case& c : {Case{"per row", options(WeightBits::kInt4)}, Case{"group 32", options(WeightBits::kInt4, 32)},
                        Case{"group 32 act_order", options(WeightBits::kInt4, 32, true)},
                        Case{"int8 asymmetric", options(WeightBits::kInt8, 0, false, false)}}) {
    const double gptq = output_error(x, rows, wv, dequantize(gptq_quantize(w, h, c.o), c.o.group_size), out, n);
    GptqOptions plain = c.o;
    plain.act_order = false;  // round-to-nearest in the natural groups
    const double rtn = output_error(x, rows, wv, dequantize(gptq_quantize(w, id, plain), plain.group_size), out, n);
    EXPECT_LT(gptq, 0.1 * rtn) << c.name << ": GPTQ " << gptq << ", RTN " << rtn;
  }
}

TEST(GptqActOrder, GroupIndexFollowsTheQuantizationOrder) {
  constexpr std::int64_t out = 8, n = 128, rows = 300;
  std::mt19937 rng(9);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Floats h = hessian_of(input_rows(rows, n, 17, 4), rows, n);
  const GptqResult q = gptq_quantize(bf16_matrix(out, n, wv), h, options(WeightBits::kInt4, 32, true));
  ASSERT_EQ(q.order.size(), static_cast<std::size_t>(n));
  ASSERT_EQ(q.group_index.size(), static_cast<std::size_t>(n));
  std::vector<int> members(n / 32, 0);
  for (std::int64_t k = 0; k < n; ++k) {
    if (k + 1 < n) {
      EXPECT_GE(h[q.order[k] * n + q.order[k]], h[q.order[k + 1] * n + q.order[k + 1]]);
    }
    EXPECT_EQ(q.group_index[q.order[k]], k / 32);
    ++members[q.group_index[q.order[k]]];
  }
  EXPECT_EQ(members, std::vector<int>(n / 32, 32));
  for (std::int64_t k = 0; k < 4; ++k) EXPECT_LT(q.order[k] * 37 % n, 4) << k;  // the massive channels first
  // Without groups act_order records the order only; without act_order neither is recorded.
  const GptqResult per_row = gptq_quantize(bf16_matrix(out, n, wv), h, options(WeightBits::kInt4, 0, true));
  EXPECT_EQ(per_row.order, q.order);
  EXPECT_TRUE(per_row.group_index.empty());
  const GptqResult natural = gptq_quantize(bf16_matrix(out, n, wv), h, options(WeightBits::kInt4, 32));
  EXPECT_TRUE(natural.group_index.empty());
  EXPECT_TRUE(natural.order.empty());
}

// ---- dead columns, dampening, failures ----

TEST(GptqDeadColumns, AreZeroedAndTheRestIsUnchanged) {
  constexpr std::int64_t out = 8, n = 32, rows = 100;
  std::mt19937 rng(21);
  Floats wv = random_bf16_values(out * n, rng, 0.05f);
  Floats x = input_rows(rows, n, 23);
  for (std::int64_t r = 0; r < rows; ++r) x[r * n + 5] = x[r * n + 20] = 0.0f;  // channels that never fire
  const Floats h = hessian_of(x, rows, n);
  for (bool symmetric : {true, false}) {
    const GptqOptions o = options(WeightBits::kInt4, 0, false, symmetric);
    const GptqHessian prepared = prepare_gptq_hessian(h, n, o);
    EXPECT_EQ(prepared.dead[5], 1);
    EXPECT_EQ(prepared.dead[20], 1);
    EXPECT_EQ(std::count(prepared.dead.begin(), prepared.dead.end(), 1), 2);
    // A dead column's diagonal counts as 1 in the mean the dampening is relative to.
    double trace = 0.0;
    for (std::int64_t i = 0; i < n; ++i) trace += h[i * n + i] == 0.0f ? 1.0 : h[i * n + i];
    EXPECT_EQ(prepared.lambda, 0.01 * (trace / n));
    const GptqResult q = gptq_quantize(bf16_matrix(out, n, wv), prepared, o);
    const Doubles deq = dequantize(q, 0);
    for (std::int64_t r = 0; r < out; ++r) {
      EXPECT_EQ(deq[r * n + 5], 0.0);
      EXPECT_EQ(deq[r * n + 20], 0.0);
    }
    // The same as quantizing the weight with those columns already zero.
    Floats zeroed = wv;
    for (std::int64_t r = 0; r < out; ++r) zeroed[r * n + 5] = zeroed[r * n + 20] = 0.0f;
    const GptqResult z = gptq_quantize(bf16_matrix(out, n, zeroed), prepared, o);
    EXPECT_EQ(codes_of(q.codes), codes_of(z.codes));
    EXPECT_EQ(floats_of(q.scale), floats_of(z.scale));
    expect_close(q, reference_gptq(wv, out, n, h, o), "dead columns");
  }
}

TEST(GptqDampening, IsRelativeToTheMeanDiagonalAndRescuesSingularHessians) {
  constexpr std::int64_t out = 8, n = 64;
  std::mt19937 rng(31);
  const Floats wv = random_bf16_values(out * n, rng, 0.05f);
  const Tensor w = bf16_matrix(out, n, wv);
  // 16 rows for 64 columns: H has rank 16, singular without dampening.
  const Floats h = hessian_of(input_rows(16, n, 37), 16, n);
  double trace = 0.0;
  for (std::int64_t i = 0; i < n; ++i) trace += h[i * n + i];
  GptqOptions o = options(WeightBits::kInt4);
  EXPECT_EQ(prepare_gptq_hessian(h, n, o).lambda, 0.01 * (trace / n));
  expect_close(gptq_quantize(w, h, o), reference_gptq(wv, out, n, h, o), "rank-deficient H");
  // A dampening that swamps H leaves nothing to compensate: round-to-nearest.
  o.dampening = 1e9;
  EXPECT_EQ(codes_of(gptq_quantize(w, h, o).codes),
            codes_of(quantize_weight_minmax_v1(w, {.bits = WeightBits::kInt4, .float_dtype = DType::kBF16}).codes));
  for (double bad : {0.0, -0.01, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    o.dampening = bad;
    EXPECT_THROW(prepare_gptq_hessian(h, n, o), Error) << bad;
  }
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.detail().find(needle), std::string::npos) << e.detail();
  }
}

TEST(GptqCholesky, HessiansThatAreNotPositiveDefiniteAreRejected) {
  const GptqOptions o = options(WeightBits::kInt4);
  // Negative definite: λ = 0.01·mean(diag) is negative too.
  expect_invalid([&] { prepare_gptq_hessian(Floats{-2, 0.5, 0.5, -2}, 2, o); }, "not positive definite");
  // A positive diagonal but indefinite (eigenvalues 3 and −1), beyond what 1 % dampening repairs.
  expect_invalid([&] { prepare_gptq_hessian(Floats{1, 2, 2, 1}, 2, o); }, "not positive definite");
  expect_invalid([&] { prepare_gptq_hessian(Floats{1, 2, 2, 1}, 2, options(WeightBits::kInt4, 0, true)); },
                 "act_order");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  expect_invalid([&] { prepare_gptq_hessian(Floats{1, nan, nan, 1}, 2, o); }, "NaN");
  expect_invalid([&] { prepare_gptq_hessian(Floats{1, 0, 0, std::numeric_limits<float>::infinity()}, 2, o); },
                 "NaN or an infinity");
  // The factors themselves, on a larger matrix: a negative diagonal element, and a positive diagonal with an
  // indefinite 2×2 (columns 10 and 90) that only the factorisation finds, deep inside its blocks (the matrix is
  // factored in reversed order, so column 10 is the later pivot).
  constexpr std::int64_t n = 300;
  Floats big(n * n, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) big[i * n + i] = i == 10 ? -1.0f : 1.0f;
  expect_invalid([&] { inverse_cholesky_upper(large(big), n); }, "column 10 of 300");
  expect_invalid([&] { unit_lower_factor(big, n); }, "diagonal element -1");
  big[10 * n + 10] = 1.0f;
  big[10 * n + 290] = big[290 * n + 10] = 2.0f;
  expect_invalid([&] { inverse_cholesky_upper(large(big), n); }, "Cholesky pivot");
  expect_invalid([&] { unit_lower_factor(big, n); }, "column 10 of 300");
  // The same through a separate diagonal (GPTQ's dampened one): −1 there, 1 in h.
  Floats diagonal(n, 1.0f);
  diagonal[7] = -1.0f;
  big[10 * n + 290] = big[290 * n + 10] = 0.0f;
  expect_invalid([&] { unit_lower_factor(big, n, diagonal); }, "column 7 of 300");
}

TEST(GptqValidation, BadArgumentsSayWhatIsWrong) {
  constexpr std::int64_t n = 64;
  std::mt19937 rng(41);
  const Tensor w = bf16_matrix(4, n, random_bf16_values(4 * n, rng, 0.05f));
  const Floats h = hessian_of(input_rows(100, n, 43), 100, n);
  expect_invalid([&] { gptq_quantize(w, h, options(WeightBits::kInt4, 48)); }, "does not divide");
  expect_invalid([&] { gptq_quantize(w, h, options(WeightBits::kInt4, -1)); }, "group size");
  expect_invalid([&] { gptq_quantize(w, h, options(WeightBits::kInt4, 0, false, true, 0)); }, "block size");
  expect_invalid([&] { gptq_quantize(w, Floats(n * n - 1, 1.0f), options(WeightBits::kInt4)); }, "values");
  expect_invalid([&] { gptq_quantize(bf16_matrix(4, 32, Floats(128, 1.0f)), h, options(WeightBits::kInt4)); },
                 "columns");
  expect_invalid([&] { gptq_quantize(Tensor::zeros(DType::kI8, {4, n}), h, options(WeightBits::kInt4)); },
                 "float tensor");
  const GptqHessian prepared = prepare_gptq_hessian(h, n, options(WeightBits::kInt4));
  expect_invalid([&] { gptq_quantize(w, prepared, options(WeightBits::kInt4, 0, true)); }, "prepared with");
  Floats bad(4 * n, 0.5f);
  bad[2 * n + 7] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid([&] { gptq_quantize(f32_matrix(4, n, bad), prepared, options(WeightBits::kInt4)); },
                 "weight row 2");
}

TEST(GptqThreads, SameBitsOnOneAndThreeThreads) {
  constexpr std::int64_t out = 96, n = 256, rows = 300;
  std::mt19937 rng(51);
  const Tensor w = bf16_matrix(out, n, random_bf16_values(out * n, rng, 0.05f));
  const Floats x = input_rows(rows, n, 53, 4);
  GptqResult one, three;
  Floats h1, h3;
  {
    ScopedThreads threads(1);
    h1 = hessian_of(x, rows, n);
    one = gptq_quantize(w, h1, options(WeightBits::kInt4, 64, true));
  }
  {
    ScopedThreads threads(3);
    h3 = hessian_of(x, rows, n);
    three = gptq_quantize(w, h3, options(WeightBits::kInt4, 64, true));
  }
  EXPECT_EQ(h1, h3);
  EXPECT_EQ(codes_of(one.codes), codes_of(three.codes));
  EXPECT_EQ(floats_of(one.scale), floats_of(three.scale));
}

// ---- the Hessian ----

TEST(GptqHessian, AccumulatorEqualsANaiveDoubleLoop) {
  // 202 columns; 650 rows added as 1 + 600 + 0 + 49: the Gram GEMMs' row buckets (a padded tail alone, a chunk
  // of 512 + a multiple of 64 + a padded tail, nothing, a tail).
  constexpr std::int64_t n = 202, rows = 650;
  const Floats x = input_rows(rows, n, 61, 3);
  HessianAccumulator acc(n);
  acc.add(x.data(), 1, n);
  acc.add(x.data() + n, 600, n);
  acc.add(x.data() + 601 * n, 0, n);
  acc.add(x.data() + 601 * n, 49, n);
  EXPECT_EQ(acc.rows(), rows);
  const Floats h = floats(acc.hessian());
  EXPECT_EQ(floats(std::move(acc).hessian()), h);  // in place, the same bits
  double worst = 0.0;
  Doubles diag(n);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t r = 0; r < rows; ++r) diag[i] += 2.0 / rows * x[r * n + i] * x[r * n + i];
  }
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = i; j < n; ++j) {
      double s = 0.0;
      for (std::int64_t r = 0; r < rows; ++r) s += static_cast<double>(x[r * n + i]) * x[r * n + j];
      worst = std::max(worst, std::fabs(h[i * n + j] - 2.0 / rows * s) / std::sqrt(diag[i] * diag[j]));
      ASSERT_EQ(h[j * n + i], h[i * n + j]);
    }
  }
  // Float32 sums of 650 products (in GEMM blocks, then 4 partial sums added): the worst case is ~650·2⁻²⁴ ≈ 4e-5
  // of √(H_ii·H_jj), the typical ~1e-7; a lost or doubled bucket of rows would be ≥ 1e-3 off.
  EXPECT_LT(worst, 3e-6);
}

TEST(GptqHessian, AccumulatorGivesTheSameBitsOnOneAndThreeThreads) {
  constexpr std::int64_t n = 202, rows = 300;
  const Floats x = input_rows(rows, n, 67, 3);
  Floats one, three;
  {
    ScopedThreads threads(1);
    HessianAccumulator acc(n);
    acc.add(x.data(), rows, n);
    one = floats(acc.hessian());
  }
  {
    ScopedThreads threads(3);
    HessianAccumulator acc(n);
    acc.add(x.data(), rows, n);
    three = floats(acc.hessian());
  }
  EXPECT_EQ(one, three);
}

TEST(GptqHessian, AccumulatorRejectsMisuse) {
  expect_invalid([] { HessianAccumulator acc(0); }, "at least one column");
  HessianAccumulator acc(8);
  expect_invalid([&] { acc.hessian(); }, "no input rows");
  const Floats x(16, 1.0f);
  expect_invalid([&] { acc.add(x.data(), 2, 7); }, "8 columns");
  acc.add(x.data(), 2, 8);
  EXPECT_EQ(std::move(acc).hessian().size(), 64u);
  expect_invalid([&] { acc.add(x.data(), 2, 8); }, "were taken");
  expect_invalid([&] { acc.hessian(); }, "no input rows");
}

// Σ_k U[k][i]·U[k][j] in double: UᵀU of an upper U [n, n].
Doubles gram_of_upper(const Floats& u, std::int64_t n) {
  Doubles g(n * n, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      for (std::int64_t k = 0; k <= std::min(i, j); ++k) {
        g[i * n + j] += static_cast<double>(u[k * n + i]) * u[k * n + j];
      }
    }
  }
  return g;
}

// Triangular (upper, or lower when `lower`) with a positive diagonal, or a unit one.
void expect_triangular(const Floats& u, std::int64_t n, bool lower, bool unit_diagonal) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (unit_diagonal) {
      ASSERT_EQ(u[i * n + i], 1.0f) << i;
    } else {
      ASSERT_GT(u[i * n + i], 0.0f) << i;
    }
    for (std::int64_t j = 0; j < n; ++j) {
      if (lower ? j > i : j < i) {
        ASSERT_EQ(u[i * n + j], 0.0f) << i << ", " << j;
      }
    }
  }
}

TEST(GptqHessian, InverseCholeskyFactorIsUpperAndInvertsH) {
  // 300 columns: blocks of 128 with a partial one, inner blocks of 32, unblocked 32s.
  constexpr std::int64_t n = 300, rows = 800;
  Floats h = hessian_of(input_rows(rows, n, 71, 3), rows, n);
  for (std::int64_t i = 0; i < n; ++i) h[i * n + i] += 0.01f;
  Floats one, three;
  {
    ScopedThreads threads(1);
    one = floats(inverse_cholesky_upper(large(h), n));
  }
  {
    ScopedThreads threads(3);
    three = floats(inverse_cholesky_upper(large(h), n));
  }
  EXPECT_EQ(one, three);
  // Upper with a positive diagonal, and UᵀU = H⁻¹: the unique upper Cholesky factor of H⁻¹.
  expect_triangular(one, n, false, false);
  const Doubles hinv = gram_of_upper(one, n);
  const Doubles textbook = invert(doubles(h), n);
  double worst = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      worst = std::max(worst, std::fabs(hinv[i * n + j] - textbook[i * n + j]) /
                                  std::sqrt(textbook[i * n + i] * textbook[j * n + j]));
    }
  }
  // Measured ~5e-7 (float32, equilibrated); a wrong block would be O(1).
  EXPECT_LT(worst, 1e-5);
}

TEST(GptqHessian, EquilibratedFactorsHandleADiagonalSpanningEightDecades) {
  // Input channels with gains from 0.1 to 1000: diag H from 1e-2 to 1e6, correlated through shared factors.
  // Judged in double: UᵀU·H = I, and U·Fᵀ diagonal (F = (U⁻¹ with its columns scaled)ᵀ), each entry relative to
  // the size the scaling gives it (entry (i, j) of UᵀU·H − I scales with √(H_jj / H_ii)).
  constexpr std::int64_t n = 128, rows = 1024;
  Floats x = input_rows(rows, n, 81, 0, 16);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < n; ++c) {
      x[r * n + c] *= static_cast<float>(std::pow(10.0, 4.0 * ((c * 53) % n) / (n - 1) - 1.0));
    }
  }
  const Floats h = hessian_of(x, rows, n);
  double lo = 1e30, hi = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, static_cast<double>(h[i * n + i]));
    hi = std::max(hi, static_cast<double>(h[i * n + i]));
  }
  EXPECT_LT(lo, 0.05);
  EXPECT_GT(hi, 5e5);
  const Floats u = floats(inverse_cholesky_upper(large(h), n));
  const Floats f = floats(unit_lower_factor(h, n));
  expect_triangular(u, n, false, false);
  expect_triangular(f, n, true, true);
  const Doubles hinv = gram_of_upper(u, n);
  double inverse_residual = 0.0, product_off_diagonal = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0.0, uf = 0.0;
      for (std::int64_t k = 0; k < n; ++k) s += hinv[i * n + k] * h[k * n + j];
      for (std::int64_t k = i; k <= j; ++k) uf += static_cast<double>(u[i * n + k]) * f[j * n + k];
      const double scale = std::sqrt(static_cast<double>(h[i * n + i]) / h[j * n + j]);
      inverse_residual = std::max(inverse_residual, std::fabs(s - (i == j ? 1.0 : 0.0)) * scale);
      // U·R = I with R = Fᵀ·diag(r): (U·Fᵀ)_ij = δ_ij / r_j, off the diagonal relative to U_ii-sized terms.
      if (i != j) product_off_diagonal = std::max(product_off_diagonal, std::fabs(uf) / u[i * n + i] / scale);
    }
  }
  EXPECT_LT(inverse_residual, 1e-3);       // measured ~5e-5
  EXPECT_LT(product_off_diagonal, 1e-5);   // measured ~4e-7
  // The same factor with the diagonal passed apart (as GPTQ passes its dampened one): the same bits.
  Floats diagonal(n);
  for (std::int64_t i = 0; i < n; ++i) diagonal[i] = h[i * n + i];
  Floats no_diagonal = h;
  for (std::int64_t i = 0; i < n; ++i) no_diagonal[i * n + i] = -1.0f;
  EXPECT_EQ(floats(unit_lower_factor(no_diagonal, n, diagonal)), f);
}

}  // namespace
}  // namespace moeslim::quant
