// msModelSlim v1 weight quantizers against docs/msmodelslim-algorithms.md §6.4:
//   minmax: s = max(dt(max|W| / qmax), eps32), q = clamp(rne(dt(W / s)), −2^(b−1), 2^(b−1)−1)
//   ssz:    least-squares rescaling from the minmax scale, greedy per row, one shared stop rule.
// Hand-worked rows pin each step (bf16 written as k·2^e so every rounding can be followed on paper; "bf16 grid
// 1/32" means the bf16 values near there are the multiples of 1/32). Random matrices check the row-wise
// implementation against the iteration written out literally (all rows per iteration, as msModelSlim loops),
// both kernel paths, 1 against 2 threads, and that ssz never ends worse than minmax.
#include "quant/v1_weight_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "kernels/threading.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::bf16_matrix;
using testing::codes_of;
using testing::f32_matrix;
using testing::floats_of;
using testing::kEps32;
using testing::random_bf16_values;

using Codes = std::vector<std::int8_t>;
using Floats = std::vector<float>;

class ScopedIsa {
 public:
  explicit ScopedIsa(kernels::KernelIsa isa) { kernels::set_kernel_isa(isa); }
  ~ScopedIsa() { kernels::set_kernel_isa(kernels::best_kernel_isa()); }
};

class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(kernels::num_threads()) { kernels::set_num_threads(n); }
  ~ScopedThreads() { kernels::set_num_threads(saved_); }

 private:
  int saved_;
};

std::vector<kernels::KernelIsa> available_isas() {
  std::vector<kernels::KernelIsa> isas = {kernels::KernelIsa::kPortable};
  if (kernels::best_kernel_isa() == kernels::KernelIsa::kAvx512) isas.push_back(kernels::KernelIsa::kAvx512);
  return isas;
}

V1WeightOptions options(WeightBits bits, DType dt = DType::kBF16, int steps = 50) {
  V1WeightOptions o;
  o.bits = bits;
  o.float_dtype = dt;
  o.ssz_steps = steps;
  return o;
}

// Runs a quantizer on every kernel path this CPU has, expects bit-identical results, returns the first.
template <class Fn>
ChannelQuantizedWeight on_every_path(Fn fn) {
  std::vector<ChannelQuantizedWeight> results;
  for (const kernels::KernelIsa isa : available_isas()) {
    ScopedIsa scoped(isa);
    results.push_back(fn());
    EXPECT_EQ(codes_of(results.back().codes), codes_of(results.front().codes)) << kernels::kernel_isa_name(isa);
    EXPECT_EQ(floats_of(results.back().scale), floats_of(results.front().scale)) << kernels::kernel_isa_name(isa);
  }
  return std::move(results.front());
}

ChannelQuantizedWeight minmax(const Tensor& w, const V1WeightOptions& o) {
  return on_every_path([&] { return quantize_weight_minmax_v1(w, o); });
}
ChannelQuantizedWeight ssz(const Tensor& w, const V1WeightOptions& o) {
  return on_every_path([&] { return quantize_weight_ssz(w, o); });
}

// ---- §6.4 written out literally, independently of the implementation's row-wise structure ----

// The documented fp32 summation order: partial k mod 16, then pairwise.
float lane_sum(const Floats& v) {
  float p[16] = {};
  for (std::size_t k = 0; k < v.size(); ++k) p[k % 16] += v[k];
  for (int width = 8; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) p[j] += p[j + width];
  }
  return p[0];
}

struct Ref {
  Codes codes;
  Floats scale;
};

struct RefQuantizer {
  DType dt;
  float lo, hi;

  float r(float x) const { return round_to_float_dtype(x, dt); }
  float minmax_scale(const float* w, std::int64_t n) const {
    float amax = 0.0f;
    for (std::int64_t k = 0; k < n; ++k) amax = std::max(amax, std::fabs(w[k]));
    return std::max(r(amax / hi), r(kEps32));
  }
  Floats quant(const float* w, std::int64_t n, float s) const {
    Floats q(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k) q[k] = std::clamp(std::nearbyint(r(w[k] / s)), lo, hi);
    return q;
  }
  float mse(const float* w, const Floats& q, float s) const {
    Floats e;
    for (std::size_t k = 0; k < q.size(); ++k) {
      const float d = w[k] - r(q[k] * s);
      e.push_back(d * d);
    }
    return lane_sum(e) / static_cast<float>(q.size());
  }
  float least_squares(const float* w, const Floats& q) const {
    Floats wq, qq;
    for (std::size_t k = 0; k < q.size(); ++k) {
      wq.push_back(r(w[k] * q[k]));
      qq.push_back(r(q[k] * q[k]));
    }
    return r(r(lane_sum(wq)) / std::max(r(lane_sum(qq)), r(1e-30f)));
  }
};

RefQuantizer ref_quantizer(WeightBits bits, DType dt) {
  return bits == WeightBits::kInt4 ? RefQuantizer{dt, -8.0f, 7.0f} : RefQuantizer{dt, -128.0f, 127.0f};
}

Ref finish(const RefQuantizer& rq, const Floats& w, std::int64_t cols, const Floats& scale) {
  Ref out{{}, scale};
  for (std::size_t n = 0; n < scale.size(); ++n) {
    for (const float q : rq.quant(&w[n * cols], cols, scale[n])) out.codes.push_back(static_cast<std::int8_t>(q));
  }
  return out;
}

Ref reference_minmax(const Floats& w, std::int64_t rows, std::int64_t cols, WeightBits bits, DType dt) {
  const RefQuantizer rq = ref_quantizer(bits, dt);
  Floats scale;
  for (std::int64_t n = 0; n < rows; ++n) scale.push_back(rq.minmax_scale(&w[n * cols], cols));
  return finish(rq, w, cols, scale);
}

// msModelSlim's loop: every iteration over all rows, the stop test on all rows, then greedy adoption, and the
// next iteration from the candidate codes.
Ref reference_ssz(const Floats& w, std::int64_t rows, std::int64_t cols, WeightBits bits, DType dt, int steps) {
  const RefQuantizer rq = ref_quantizer(bits, dt);
  Floats best_s, best_mse;
  std::vector<Floats> q;
  for (std::int64_t n = 0; n < rows; ++n) {
    best_s.push_back(rq.minmax_scale(&w[n * cols], cols));
    q.push_back(rq.quant(&w[n * cols], cols, best_s[n]));
    best_mse.push_back(rq.mse(&w[n * cols], q[n], best_s[n]));
  }
  for (int t = 1; t <= steps; ++t) {
    Floats cand_s, cand_mse;
    std::vector<Floats> cand_q;
    bool any_open = false;
    for (std::int64_t n = 0; n < rows; ++n) {
      cand_s.push_back(rq.least_squares(&w[n * cols], q[n]));
      cand_q.push_back(rq.quant(&w[n * cols], cols, cand_s[n]));
      cand_mse.push_back(rq.mse(&w[n * cols], cand_q[n], cand_s[n]));
      const float d = best_mse[n] - cand_mse[n];
      const bool converged = d / std::max(best_mse[n], 1e-4f) < 1e-10f || std::fabs(d) < 1e-10f;
      any_open = any_open || !converged;
    }
    if (!any_open) break;
    for (std::int64_t n = 0; n < rows; ++n) {
      if (cand_mse[n] < best_mse[n]) {
        best_mse[n] = cand_mse[n];
        best_s[n] = cand_s[n];
      }
      q[n] = cand_q[n];
    }
  }
  return finish(rq, w, cols, best_s);
}

// Weights stored in `dt` (values rounded to it), returned with their float values.
Tensor random_weight(std::int64_t rows, std::int64_t cols, DType dt, std::uint32_t seed, Floats& values) {
  std::mt19937 rng(seed);
  values = random_bf16_values(static_cast<std::size_t>(rows * cols), rng, 0.02f);
  // A few outliers per matrix, as real expert weights have; they make the rows' ranges differ.
  std::uniform_int_distribution<std::size_t> pick(0, values.size() - 1);
  for (int i = 0; i < 8; ++i) values[pick(rng)] *= 9.0f;
  Tensor t = Tensor::zeros(dt, {rows, cols});
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (dt == DType::kBF16) {
      t.mutable_data<std::uint16_t>()[i] = f32_to_bf16(values[i]);
    } else if (dt == DType::kF16) {
      t.mutable_data<std::uint16_t>()[i] = f32_to_f16(values[i]);
    } else {
      t.mutable_data<float>()[i] = values[i];
    }
  }
  t.read_f32(0, values.size(), values.data());  // the stored values
  return t;
}

// mean_k (W − dt(q·s))² in double: the quality both quantizers are judged by.
double row_mse(const Floats& w, const ChannelQuantizedWeight& q, std::int64_t n, std::int64_t cols, DType dt) {
  double sum = 0.0;
  const float s = q.scale.data<float>()[n];
  for (std::int64_t k = 0; k < cols; ++k) {
    const double d = w[n * cols + k] - round_to_float_dtype(q.codes.data<std::int8_t>()[n * cols + k] * s, dt);
    sum += d * d;
  }
  return sum / static_cast<double>(cols);
}

// ---------------------------------------------------------------- minmax

TEST(V1MinMax, Int8HandRows) {
  const auto q = minmax(bf16_matrix(4, 4,
                                    {
                                        0.0f, 0.0f, 0.0f, 0.0f,                  //
                                        -1.40625f, 1.40625f, -0.84375f, 0.625f,  //
                                        1.0f, 0.3828125f, -0.5f, 0.25f,          //
                                        -2.0f, 1.0f, 0.5f, 0.0f,                 //
                                    }),
                        options(WeightBits::kInt8));
  // Row 0, all zeros: max|W|/127 = 0 is raised to eps32 = 2^-23 (a bf16 value); every code is 0.
  // Row 1: 1.40625/127 = 0.011073 → bf16 (grid 2^-14) 181·2^-14 = 0.01104736328125, rounded down by 0.23 %, so
  //   −1.40625/s = −127.29 → bf16 (grid 1/2) −127.5 → rne −128: v1's lower bound is reached by rounding alone
  //   (v0's symmetric clamp would give −127); +1.40625 gives +128 and is clamped to 127;
  //   −0.84375/s = −76.38 → bf16 −76.5 → rne −76;  0.625/s = 56.58 → bf16 (grid 1/4) 56.5 → rne 56, not the 57
  //   that rounding the exact quotient would give.
  // Row 2: 1/127 → bf16 0.00787353515625; 1/s = 127.007 → 127; 0.3828125/s = 48.62 → bf16 (grid 1/4) 48.5 →
  //   rne 48 (exact quotient: 49); −0.5/s = −63.504 → bf16 −63.5 → −64; 0.25/s = 31.752 → bf16 31.75 → 32.
  // Row 3: −min (2) > max (1): s = bf16(2/127) = 0.0157470703125; −2/s = −127.007 → −127;
  //   1/s = 63.504 → bf16 63.5 → 64; 0.5/s = 31.752 → bf16 31.75 → 32.
  EXPECT_EQ(floats_of(q.scale), (Floats{kEps32, 0.01104736328125f, 0.00787353515625f, 0.0157470703125f}));
  EXPECT_EQ(codes_of(q.codes), (Codes{0, 0, 0, 0,          //
                                      -128, 127, -76, 56,  //
                                      127, 48, -64, 32,    //
                                      -127, 64, 32, 0}));
}

TEST(V1MinMax, Int4HandRows) {
  const Tensor w = bf16_matrix(4, 4,
                               {
                                   0.0f, 0.0f, 0.0f, 0.0f,                        //
                                   -1.75f, 0.5f, 1.0f, 0.25f,                     //
                                   1.5f, 0.3203125f, -0.53515625f, 0.96484375f,   //
                                   1.75f, 0.625f, 0.875f, -0.375f,                //
                               });
  const auto q = minmax(w, options(WeightBits::kInt4));
  // Row 0: eps32, codes 0.
  // Row 1: −min (1.75) > max (1): s = 1.75/7 = 0.25 exactly; codes −7, 2, 4, 1.
  // Row 2: 1.5/7 = 0.2142857 → bf16 (grid 2^-10) 219/1024 = 0.2138671875;
  //   1.5/s = 7.0137 → bf16 (grid 1/32) 7.0 → 7;
  //   0.3203125/s = 1.4977 → bf16 (grid 1/128) 1.5 → rne 2  (the exact quotient rounds to 1);
  //   −0.53515625/s = −2.5023 → bf16 (grid 1/64) −2.5 → rne −2  (exact: −3);
  //   0.96484375/s = 4.5114 → bf16 (grid 1/32) 4.5 → rne 4  (exact: 5).
  // Row 3: s = 0.25 and exact ties: 0.625/s = 2.5 → 2, 0.875/s = 3.5 → 4, −0.375/s = −1.5 → −2 (half to even).
  EXPECT_EQ(floats_of(q.scale), (Floats{kEps32, 0.25f, 0.2138671875f, 0.25f}));
  EXPECT_EQ(codes_of(q.codes), (Codes{0, 0, 0, 0,     //
                                      -7, 2, 4, 1,    //
                                      7, 2, -2, 4,    //
                                      7, 2, 4, -2}));
  // An F32 model rounds nothing: row 2's s = fp32(1.5/7) and codes rne(1.4948) = 1, rne(−2.4974) = −2,
  // rne(4.5026) = 5.
  const auto f = minmax(w, options(WeightBits::kInt4, DType::kF32));
  EXPECT_EQ(f.scale.data<float>()[2], 1.5f / 7.0f);
  EXPECT_EQ(Codes(f.codes.data<std::int8_t>() + 8, f.codes.data<std::int8_t>() + 12), (Codes{7, 1, -2, 5}));
}

TEST(V1MinMax, MatchesTheFormulaOnRandomMatrices) {
  for (const DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (const WeightBits bits : {WeightBits::kInt8, WeightBits::kInt4}) {
      Floats values;
      const Tensor w = random_weight(24, 200, dt, 11, values);
      const auto q = minmax(w, options(bits, dt));
      const Ref ref = reference_minmax(values, 24, 200, bits, dt);
      EXPECT_EQ(codes_of(q.codes), ref.codes) << dtype_name(dt);
      EXPECT_EQ(floats_of(q.scale), ref.scale) << dtype_name(dt);
    }
  }
}

// ---------------------------------------------------------------- ssz, by hand (bf16, int4)

// Row B improves three times. s0 = 1.75/7 = 0.25; W/s = 5.5, 3.375, 2.5, −7 → codes 6, 3, 2, −7 (ties to even);
// dequantized 1.5, 0.75, 0.5, −1.75; errors −0.125, 0.09375, 0.125, 0 → mse0 = 0.0400390625/4 = 0.010009765625.
//  it 1: Σ W·q = 8.25 + 2.53125 + 1.25 + 12.25 = 24.28125 → bf16 (grid 1/8) 24.25; Σ q² = 98;
//        s1 = 24.25/98 = 0.24745 → bf16 (grid 2^-10) 253/1024 = 0.2470703125.
//        W/s1 = 5.565 → bf16 5.5625 → 6;  3.415 → 3.421875 → 3;  2.530 → 2.53125 → 3;  −7.083 → −7.09375 → −7.
//        q·s1 → bf16: 1.484375, 0.7421875, 0.7421875, −1.7265625; errors −0.109375, 0.1015625, −0.1171875,
//        −0.0234375 → mse1 = 0.03656005859375/4 = 0.0091400146484375 < mse0: adopted, and still improving.
//  it 2: codes 6, 3, 3, −7: Σ W·q = 24.90625 → bf16 24.875; Σ q² = 103; s2 = 0.241505 → 247/1024 = 0.2412109375.
//        W/s2 = 5.700 → 5.6875 → 6;  3.49798 → bf16 (grid 1/64) 3.5 → rne 4;  2.591 → 2.59375 → 3;  −7.255 → −7.
//        q·s2 → 1.4453125, 0.96484375, 0.72265625, −1.6875 → mse2 = 0.033050537109375/4 = 0.00826263427734375.
//  it 3: codes 6, 4, 3, −7: Σ W·q = 25.75; Σ q² = 110; s3 = 0.234091 → 240/1024 = 0.234375.
//        W/s3 = 5.867 → 6; 3.6 → 4; 2.667 → 3; −7.467 → −7 (the same codes) → mse3 = 0.0278320312/4 = 0.0069580078125.
//  it 4: the same codes give s4 = s3 and mse4 = mse3: nothing improves, the loop stops; s = s3.
const Floats kRowB = {1.375f, 0.84375f, 0.625f, -1.75f};
constexpr float kB1 = 0.2470703125f, kB2 = 0.2412109375f, kB3 = 0.234375f;

// Row C's first candidate is worse. s0 = 1.5625/7 = 0.22321 → bf16 229/1024 = 0.2236328125;
// W/s0 = −6.987 → bf16 −7.0 → −7;  −2.515 → −2.515625 → −3;  4.472 → 4.46875 → 4;  0 → 0.
// q·s0 → bf16 −1.5625, −0.671875, 0.89453125 → errors 0, 0.109375, 0.10546875 → mse0 = 0.0230865478515625/4.
//  it 1: Σ W·q = 10.9375 + 1.6875 + 4 = 16.625; Σ q² = 74; s1 = 0.22466 → 230/1024 = 0.224609375.
//        W/s1 = −6.957 → −6.96875 → −7;  −2.50435 → bf16 (grid 1/64) −2.5 → rne −2;  4.452 → 4.4375 → 4.
//        q·s1 → −1.5703125, −0.44921875, 0.8984375 → errors −0.0078125, −0.11328125, 0.1015625
//        → mse1 = 0.0232086181640625/4 > mse0: rejected (and not improving).
//  it 2, from the rejected candidate's codes −7, −2, 4: Σ W·q = 16.0625 → bf16 (grid 1/8, tie to even) 16;
//        Σ q² = 69; s2 = 0.23188 → 237/1024 = 0.2314453125.
//        W/s2 = −6.751 → −6.75 → −7;  −2.430 → −2.4375 → −2;  4.321 → 4.3125 → 4.
//        q·s2 → −1.6171875, −0.462890625, 0.92578125 → mse2 = 0.018421173095703125/4 < mse0: adopted.
//  it 3: the same codes: s3 = s2, nothing new.
const Floats kRowC = {-1.5625f, -0.5625f, 1.0f, 0.0f};
constexpr float kC0 = 0.2236328125f, kC2 = 0.2314453125f;

Floats concat(std::initializer_list<Floats> parts) {
  Floats all;
  for (const Floats& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

TEST(V1Ssz, RowImprovesOverThreeIterationsThenStops) {
  const auto q = ssz(bf16_matrix(1, 4, kRowB), options(WeightBits::kInt4));
  EXPECT_EQ(floats_of(q.scale), (Floats{kB3}));
  EXPECT_EQ(codes_of(q.codes), (Codes{6, 4, 3, -7}));
}

TEST(V1Ssz, StepsLimitTheIterations) {
  const Tensor w = bf16_matrix(1, 4, kRowB);
  const auto one = ssz(w, options(WeightBits::kInt4, DType::kBF16, 1));
  EXPECT_EQ(floats_of(one.scale), (Floats{kB1}));
  EXPECT_EQ(codes_of(one.codes), (Codes{6, 3, 3, -7}));
  const auto two = ssz(w, options(WeightBits::kInt4, DType::kBF16, 2));
  EXPECT_EQ(floats_of(two.scale), (Floats{kB2}));
  EXPECT_EQ(codes_of(two.codes), (Codes{6, 4, 3, -7}));
  EXPECT_EQ(floats_of(ssz(w, options(WeightBits::kInt4, DType::kBF16, 3)).scale), (Floats{kB3}));
}

TEST(V1Ssz, StopsAtTheFirstIterationWhenNoRowImproves) {
  // Alone, row C's first candidate is worse, so iteration 1 ends the loop: the minmax scale and codes stay,
  // although iteration 2 would have improved (see GreedyContinuesFromTheRejectedCandidate).
  const auto c = ssz(bf16_matrix(1, 4, kRowC), options(WeightBits::kInt4));
  EXPECT_EQ(floats_of(c.scale), (Floats{kC0}));
  EXPECT_EQ(codes_of(c.codes), (Codes{-7, -3, 4, 0}));
  // A row the minmax scale already fits exactly: s0 = 0.25, codes 7, −7, 3, 1, error 0;
  // s1 = Σ W·q / Σ q² = 27/108 = 0.25 again. A zero row keeps eps32 (no codes to fit).
  const auto exact = ssz(bf16_matrix(2, 4, {1.75f, -1.75f, 0.75f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f}),
                         options(WeightBits::kInt4));
  EXPECT_EQ(floats_of(exact.scale), (Floats{0.25f, kEps32}));
  EXPECT_EQ(codes_of(exact.codes), (Codes{7, -7, 3, 1, 0, 0, 0, 0}));
}

TEST(V1Ssz, GreedyContinuesFromTheRejectedCandidate) {
  // With row B improving at iterations 1–3, the loop runs to iteration 4. Row C rejects its worse first
  // candidate (keeping s0) but iteration 2 starts from that candidate's codes and adopts s2. The zero row
  // neither improves nor blocks anything.
  const Tensor w = bf16_matrix(3, 4, concat({kRowB, kRowC, {0.0f, 0.0f, 0.0f, 0.0f}}));
  const auto q = ssz(w, options(WeightBits::kInt4));
  EXPECT_EQ(floats_of(q.scale), (Floats{kB3, kC2, kEps32}));
  EXPECT_EQ(codes_of(q.codes), (Codes{6, 4, 3, -7, -7, -2, 4, 0, 0, 0, 0, 0}));
  // One step: B adopts s1, C's only candidate is rejected.
  const auto one = ssz(w, options(WeightBits::kInt4, DType::kBF16, 1));
  EXPECT_EQ(floats_of(one.scale), (Floats{kB1, kC0, kEps32}));
}

TEST(V1Ssz, LeastSquaresScalesReachTheLowerCodeBound) {
  // s0 = bf16(1.59375/7) = 233/1024; the least-squares scales shrink to 209/1024 = 0.2041015625 (three
  // improvements), where −1.59375/s = −7.809 → bf16 (grid 1/32) −7.8125 → −8: int4's asymmetric bound.
  const auto q = ssz(bf16_matrix(1, 4, {-1.59375f, -1.25f, 0.8125f, -1.46875f}), options(WeightBits::kInt4));
  EXPECT_EQ(floats_of(q.scale), (Floats{0.2041015625f}));
  EXPECT_EQ(codes_of(q.codes), (Codes{-8, -6, 4, -7}));
}

// ---------------------------------------------------------------- ssz, random matrices

TEST(V1Ssz, MatchesTheIterationWrittenOutOnRandomMatrices) {
  struct Case {
    DType dt;
    WeightBits bits;
    int steps;
    std::int64_t rows, cols;
  };
  // 200 and 2051 columns leave partial 16-lane chunks; 2 steps cut the loop short of convergence.
  for (const Case& c : {Case{DType::kBF16, WeightBits::kInt4, 50, 24, 200}, Case{DType::kBF16, WeightBits::kInt8, 50, 24, 200},
                        Case{DType::kBF16, WeightBits::kInt4, 2, 24, 200}, Case{DType::kBF16, WeightBits::kInt4, 50, 6, 2051},
                        Case{DType::kF16, WeightBits::kInt4, 50, 12, 200}, Case{DType::kF32, WeightBits::kInt4, 50, 12, 200},
                        Case{DType::kF32, WeightBits::kInt8, 50, 12, 200}}) {
    Floats values;
    const Tensor w = random_weight(c.rows, c.cols, c.dt, 23, values);
    const auto q = ssz(w, options(c.bits, c.dt, c.steps));
    const Ref ref = reference_ssz(values, c.rows, c.cols, c.bits, c.dt, c.steps);
    const std::string what = std::string(dtype_name(c.dt)) + (c.bits == WeightBits::kInt4 ? " int4" : " int8") +
                             " steps " + std::to_string(c.steps);
    EXPECT_EQ(floats_of(q.scale), ref.scale) << what;
    EXPECT_EQ(codes_of(q.codes), ref.codes) << what;
  }
}

TEST(V1Ssz, NeverEndsWorseThanMinMax) {
  for (const WeightBits bits : {WeightBits::kInt4, WeightBits::kInt8}) {
    Floats values;
    const std::int64_t rows = 32, cols = 512;
    const Tensor w = random_weight(rows, cols, DType::kBF16, 5, values);
    const auto mm = quantize_weight_minmax_v1(w, options(bits));
    const auto sz = quantize_weight_ssz(w, options(bits));
    int better = 0;
    for (std::int64_t n = 0; n < rows; ++n) {
      const double e_mm = row_mse(values, mm, n, cols, DType::kBF16);
      const double e_sz = row_mse(values, sz, n, cols, DType::kBF16);
      // Adoption compares fp32 MSEs; the double ones agree up to fp32 rounding.
      EXPECT_LE(e_sz, e_mm * (1.0 + 1e-6)) << "row " << n;
      better += e_sz < e_mm;
    }
    // int4's least-squares steps are coarse enough to pay on most rows; an int8 row's optimum is usually
    // within one bf16 step of its minmax scale, so few int8 rows change at all.
    if (bits == WeightBits::kInt4) {
      EXPECT_GT(better, rows / 2);
    }
  }
}

// ---------------------------------------------------------------- both

TEST(V1WeightQuant, ThreadCountDoesNotChangeTheBits) {
  Floats values;
  // 1024×1024 reaches minmax's threading threshold; ssz threads from 2^15 elements.
  const Tensor big = random_weight(1024, 1024, DType::kBF16, 3, values);
  const Tensor small = random_weight(64, 1024, DType::kBF16, 4, values);
  for (const WeightBits bits : {WeightBits::kInt4, WeightBits::kInt8}) {
    ChannelQuantizedWeight mm1, sz1, mm2, sz2;
    {
      ScopedThreads threads(1);
      mm1 = quantize_weight_minmax_v1(big, options(bits));
      sz1 = quantize_weight_ssz(small, options(bits));
    }
    {
      ScopedThreads threads(2);
      mm2 = quantize_weight_minmax_v1(big, options(bits));
      sz2 = quantize_weight_ssz(small, options(bits));
    }
    EXPECT_EQ(codes_of(mm1.codes), codes_of(mm2.codes));
    EXPECT_EQ(floats_of(mm1.scale), floats_of(mm2.scale));
    EXPECT_EQ(codes_of(sz1.codes), codes_of(sz2.codes));
    EXPECT_EQ(floats_of(sz1.scale), floats_of(sz2.scale));
  }
}

TEST(V1WeightQuant, Int4CodesStayInTheInt4Range) {
  Floats values;
  const Tensor w = random_weight(64, 512, DType::kBF16, 9, values);
  for (const auto& q : {quantize_weight_minmax_v1(w, options(WeightBits::kInt4)),
                        quantize_weight_ssz(w, options(WeightBits::kInt4))}) {
    const Codes codes = codes_of(q.codes);
    EXPECT_GE(*std::min_element(codes.begin(), codes.end()), -8);
    EXPECT_LE(*std::max_element(codes.begin(), codes.end()), 7);
    EXPECT_EQ(q.codes.dtype(), DType::kI8);
    EXPECT_EQ(q.codes.shape(), (Shape{64, 512}));
    EXPECT_EQ(q.scale.dtype(), DType::kF32);
    EXPECT_EQ(q.scale.shape(), (Shape{64}));
  }
}

TEST(V1WeightQuant, ReadsAMappedView) {
  const Floats v = {1.375f, 0.84375f, 0.625f, -1.75f};
  auto owner = std::make_shared<std::vector<std::uint16_t>>();
  for (const float x : v) owner->push_back(f32_to_bf16(x));
  const Tensor view = Tensor::view(DType::kBF16, {1, 4}, owner->data(), owner);
  EXPECT_EQ(floats_of(quantize_weight_ssz(view, options(WeightBits::kInt4)).scale), (Floats{kB3}));
}

TEST(V1WeightQuant, RejectsWhatItCannotQuantize) {
  const auto expect_invalid = [](auto fn) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  };
  const Tensor nan_row = f32_matrix(2, 2, {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f});
  const Tensor inf_row = f32_matrix(1, 2, {std::numeric_limits<float>::infinity(), 0.0f});
  for (const Tensor* w : {&nan_row, &inf_row}) {
    expect_invalid([&] { quantize_weight_minmax_v1(*w, options(WeightBits::kInt8)); });
    expect_invalid([&] { quantize_weight_ssz(*w, options(WeightBits::kInt4)); });
  }
  expect_invalid([] { quantize_weight_ssz(Tensor::zeros(DType::kF32, {4}), options(WeightBits::kInt4)); });
  expect_invalid([] { quantize_weight_minmax_v1(Tensor::zeros(DType::kI8, {2, 2}), options(WeightBits::kInt8)); });
  expect_invalid([] { quantize_weight_ssz(Tensor::zeros(DType::kF32, {2, 2}), options(WeightBits::kInt4, DType::kBF16, 0)); });
  expect_invalid([] { quantize_weight_ssz(Tensor::zeros(DType::kF32, {2, 2}), options(WeightBits::kInt4, DType::kI8)); });
}

TEST(V1QuantizedLinear, SchemeChoosesTheBitsAndMethodTheQuantizer) {
  const Tensor w = bf16_matrix(2, 4, concat({kRowB, kRowC}));
  const V1WeightOptions o = options(WeightBits::kInt8);  // the scheme overrides the bits
  const QuantizedLinear w4 =
      quantize_linear_weight_v1(model::ModuleId::expert_proj(0, model::ModuleRole::kUpProj, 0), QuantScheme::kW4A8Dynamic, w,
                                V1WeightMethod::kSsz, o);
  EXPECT_EQ(w4.module, model::ModuleId::expert_proj(0, model::ModuleRole::kUpProj, 0));
  EXPECT_EQ(w4.scheme, QuantScheme::kW4A8Dynamic);
  EXPECT_EQ(floats_of(w4.weight_scale), (Floats{kB3, kC2}));
  EXPECT_EQ(codes_of(w4.weight), (Codes{6, 4, 3, -7, -7, -2, 4, 0}));
  EXPECT_TRUE(w4.bias.empty());
  EXPECT_TRUE(w4.input_scale.empty());

  const QuantizedLinear w8 = quantize_linear_weight_v1({0, model::ModuleRole::kQProj}, QuantScheme::kW8A8Dynamic,
                                                       w, V1WeightMethod::kMinMax, options(WeightBits::kInt4));
  EXPECT_EQ(w8.scheme, QuantScheme::kW8A8Dynamic);
  const auto expected = quantize_weight_minmax_v1(w, options(WeightBits::kInt8));
  EXPECT_EQ(codes_of(w8.weight), codes_of(expected.codes));
  EXPECT_EQ(floats_of(w8.weight_scale), floats_of(expected.scale));
}

TEST(V1QuantizedLinear, ErrorsNameTheLinear) {
  try {
    quantize_linear_weight_v1({3, model::ModuleRole::kOProj}, QuantScheme::kW8A8, bf16_matrix(1, 2, {1.0f, 0.5f}),
                              V1WeightMethod::kMinMax, options(WeightBits::kInt8));
    ADD_FAILURE() << "W8A8 (static) accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "model.layers.3.self_attn.o_proj");
  }
  try {
    quantize_linear_weight_v1({3, model::ModuleRole::kOProj}, QuantScheme::kW8A8Dynamic,
                              f32_matrix(1, 2, {std::numeric_limits<float>::quiet_NaN(), 0.5f}),
                              V1WeightMethod::kSsz, options(WeightBits::kInt8));
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "model.layers.3.self_attn.o_proj.weight");
  }
}

}  // namespace
}  // namespace moeslim::quant
