// flex_smooth_quant (docs/msmodelslim-algorithms.md §6.3) and the two MoE subgraphs of
// quant/flex_smoothing.h:
//   * flex_error on a 2×2 case worked out by hand, and its NaN cases;
//   * the α/β grid and selection rule (last tie wins, the β fallback quirk) on injected error functions and on
//     flex_error itself, re-applied independently here;
//   * every smoothing is an equivalence of the float subgraph (tight in F32, bf16-tight in BF16), router logits
//     included, and the new subgraphs lower the per-token int8 error of the input they smooth.
#include "quant/flex_search.h"
#include "quant/flex_smoothing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/scoped_threads.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::f32_matrix;
using testing::f32_vector;
using testing::floats_of;

using Matrix = std::vector<std::vector<double>>;  // [rows][cols], references in double

Tensor random_matrix(std::int64_t rows, std::int64_t cols, std::mt19937& rng, float sigma, DType dt) {
  std::normal_distribution<float> normal(0.0f, sigma);
  Tensor t = Tensor::zeros(DType::kF32, {rows, cols});
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = round_to_float_dtype(normal(rng), dt);
  return t;
}

Matrix rows_of(const Tensor& t) {
  Matrix m(static_cast<std::size_t>(t.dim(0)), std::vector<double>(static_cast<std::size_t>(t.dim(1))));
  for (std::int64_t r = 0; r < t.dim(0); ++r) {
    for (std::int64_t c = 0; c < t.dim(1); ++c) m[r][c] = t.data<float>()[r * t.dim(1) + c];
  }
  return m;
}

// y = x·Wᵀ
Matrix linear(const Matrix& x, const Tensor& w) {
  const Matrix wm = rows_of(w);
  Matrix y(x.size(), std::vector<double>(wm.size(), 0.0));
  for (std::size_t t = 0; t < x.size(); ++t) {
    for (std::size_t i = 0; i < wm.size(); ++i) {
      for (std::size_t k = 0; k < x[t].size(); ++k) y[t][i] += x[t][k] * wm[i][k];
    }
  }
  return y;
}

// γ ⊙ x / rms(x) per row (Qwen3's RMSNorm).
Matrix rms_norm(const Matrix& x, const Tensor& gamma) {
  Matrix y = x;
  for (auto& row : y) {
    double ss = 0.0;
    for (double v : row) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(row.size()) + 1e-6);
    for (std::size_t j = 0; j < row.size(); ++j) row[j] *= inv * gamma.data<float>()[j];
  }
  return y;
}

double silu(double z) { return z / (1.0 + std::exp(-z)); }

// down(silu(gate·x) ⊙ up·x)
Matrix swiglu(const Matrix& x, const Tensor& gate, const Tensor& up, const Tensor& down) {
  Matrix g = linear(x, gate), u = linear(x, up);
  for (std::size_t t = 0; t < g.size(); ++t) {
    for (std::size_t j = 0; j < g[t].size(); ++j) g[t][j] = silu(g[t][j]) * u[t][j];
  }
  return linear(g, down);
}

std::vector<float> column_abs_max(const Matrix& x) {
  std::vector<float> a(x[0].size(), 0.0f);
  for (const auto& row : x) {
    for (std::size_t j = 0; j < row.size(); ++j) a[j] = std::max(a[j], static_cast<float>(std::fabs(row[j])));
  }
  return a;
}

// max |a − b| relative to max |a|.
double relative_max_diff(const Matrix& a, const Matrix& b) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    for (std::size_t j = 0; j < a[t].size(); ++j) {
      diff = std::max(diff, std::fabs(a[t][j] - b[t][j]));
      scale = std::max(scale, std::fabs(a[t][j]));
    }
  }
  return diff / scale;
}

// Per-token symmetric int8 fake quantization of each row (the W8A8/W4A8 dynamic activation scheme).
Matrix per_token_int8(const Matrix& x) {
  Matrix q = x;
  for (auto& row : q) {
    double m = 0.0;
    for (double v : row) m = std::max(m, std::fabs(v));
    const double s = m / 127.0;
    for (double& v : row) v = std::nearbyint(v / s) * s;
  }
  return q;
}

// ||a − b|| / ||b||
double relative_l2(const Matrix& a, const Matrix& b) {
  double num = 0.0, den = 0.0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    for (std::size_t j = 0; j < a[t].size(); ++j) {
      num += (a[t][j] - b[t][j]) * (a[t][j] - b[t][j]);
      den += b[t][j] * b[t][j];
    }
  }
  return std::sqrt(num / den);
}

// Tokens with a few outlier channels.
Matrix outlier_tokens(std::int64_t tokens, std::int64_t channels, std::mt19937& rng, std::vector<std::int64_t> outliers,
                      double factor) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Matrix x(static_cast<std::size_t>(tokens), std::vector<double>(static_cast<std::size_t>(channels)));
  for (auto& row : x) {
    for (double& v : row) v = normal(rng);
    for (std::int64_t c : outliers) row[c] *= factor;
  }
  return x;
}

// ---------------------------------------------------------------------------------------------- flex_error

TEST(FlexError, TwoByTwoByHand) {
  // a = (4, 1), w = (1, 4); α = β = 0.5: σ = (√4/√1, √1/√4) = (2, 0.5).
  // X/σ = [[2, 0.5], [−1.5, 2]] → interval 2/127 per row, codes [127, 31.75→32], [−95.25→−95, 127].
  // W⊙σ = [[2, 2], [0.75, −1]] → codes [127, 127] (interval 2/127), [95.25→95, −127] (interval 1/127).
  const Tensor x = f32_matrix(2, 2, {4.0f, 0.25f, -3.0f, 1.0f});
  const Tensor w = f32_matrix(2, 2, {1.0f, 4.0f, 0.375f, -2.0f});
  const double q[2][2] = {{2 * 2 + (64.0 / 127) * 2, 2 * (95.0 / 127) + (64.0 / 127) * -1},
                          {(-190.0 / 127) * 2 + 2 * 2, (-190.0 / 127) * (95.0 / 127) + 2 * -1}};
  const double y[2][2] = {{4 + 1, 4 * 0.375 - 0.5}, {-3 + 4, -3 * 0.375 - 2}};  // X·Wᵀ
  double num = 0.0, den = 0.0;
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 2; ++i) {
      num += (q[t][i] - y[t][i]) * (q[t][i] - y[t][i]);
      den += y[t][i] * y[t][i];
    }
  }
  const double expected = std::sqrt(num / 4) / std::sqrt(den / 4);  // ≈ 2.65e-3
  // Float rounding of the two products (|y| ≈ 5) is ~1e-4 of the differences (≈ 1/127).
  EXPECT_NEAR(flex_error(x, {&w}, 0.5, 0.5, DType::kF32), expected, 2e-4 * expected);
}

TEST(FlexError, Bf16ErrorsHaveBf16Resolution) {
  std::mt19937 rng(3);
  const Tensor x = random_matrix(16, 8, rng, 1.0f, DType::kBF16), w = random_matrix(12, 8, rng, 0.1f, DType::kBF16);
  const double e = flex_error(x, {&w}, 0.35, 0.65, DType::kBF16);
  EXPECT_GT(e, 0.0);
  EXPECT_EQ(e, static_cast<double>(round_to_bf16(static_cast<float>(e))));
}

TEST(FlexError, NaNWhereMsModelSlimsTensorsHoldNaN) {
  // Column 1 of X is zero: with α > 0 its σ is 0 and X/σ holds 0/0; with α = 0, σ = w^−β is fine.
  const Tensor x = f32_matrix(2, 2, {1.0f, 0.0f, -2.0f, 0.0f});
  const Tensor w = f32_matrix(2, 2, {1.0f, 2.0f, 3.0f, -1.0f});
  EXPECT_TRUE(std::isnan(flex_error(x, {&w}, 0.5, 0.5, DType::kF32)));
  EXPECT_TRUE(std::isfinite(flex_error(x, {&w}, 0.0, 1.0, DType::kF32)));
  // An all-zero token row: interval 0.
  const Tensor x0 = f32_matrix(2, 2, {1.0f, 1.0f, 0.0f, 0.0f});
  EXPECT_TRUE(std::isnan(flex_error(x0, {&w}, 0.0, 0.0, DType::kF32)));
}

TEST(FlexError, PortableAndAvx512PathsGiveTheSameBits) {
  // Meaningful where the CPU has AVX-512 (elsewhere both runs take the portable path).
  std::mt19937 rng(4);
  Tensor x = random_matrix(40, 200, rng, 1.0f, DType::kBF16);
  for (std::int64_t t = 0; t < 40; ++t) x.mutable_data<float>()[t * 200 + 7] *= 40.0f;
  const Tensor w = random_matrix(72, 200, rng, 0.05f, DType::kBF16);
  const kernels::KernelIsa isa = kernels::active_kernel_isa();
  std::vector<double> best, portable;
  for (int i = 0; i < kFlexGridPoints; i += 4) {
    for (const DType dt : {DType::kBF16, DType::kF32}) best.push_back(flex_error(x, {&w}, flex_grid_value(i), 0.3, dt));
  }
  kernels::set_kernel_isa(kernels::KernelIsa::kPortable);
  for (int i = 0; i < kFlexGridPoints; i += 4) {
    for (const DType dt : {DType::kBF16, DType::kF32}) portable.push_back(flex_error(x, {&w}, flex_grid_value(i), 0.3, dt));
  }
  kernels::set_kernel_isa(isa);
  EXPECT_EQ(best, portable);
}

// ---------------------------------------------------------------------------------------------- grid and rule

TEST(FlexGrid, IsNumpysRoundedArange) {
  for (int i = 0; i < kFlexGridPoints; ++i) EXPECT_EQ(flex_grid_value(i), i / 20.0) << i;
  EXPECT_EQ(flex_grid_value(3), 0.15);
  EXPECT_NE(flex_grid_value(3), 3 * 0.05);  // not i·step …
  double acc = 0.0;
  for (int i = 0; i < 8; ++i) acc += 0.05;
  EXPECT_NE(flex_grid_value(8), acc);  // … nor a running sum
  EXPECT_EQ(flex_grid_value(20), 1.0);
}

TEST(FlexGridSearch, PhaseOneUsesOneMinusAlphaInDouble) {
  std::vector<std::pair<double, double>> calls;
  flex_grid_search([&](double a, double b) {
    calls.emplace_back(a, b);
    return 1.0;
  });
  ASSERT_EQ(calls.size(), 42u);
  EXPECT_EQ(calls[11].second, 1.0 - 0.55);
  EXPECT_NE(calls[11].second, flex_grid_value(9));                 // 0.45000000000000001 vs 0.45: one ulp apart
  EXPECT_EQ(static_cast<float>(calls[11].second), static_cast<float>(flex_grid_value(9)));  // same float32
}

TEST(FlexGridSearch, LastTiedAlphaAndBetaWin) {
  const auto near = [](double v, double g) { return std::fabs(v - g) < 1e-9; };
  const FlexSearchResult r = flex_grid_search([&](double a, double b) {
    if (near(a + b, 1.0) && !near(b, 0.4)) return a < 0.3 - 1e-9 ? 1.0 : a <= 0.6 + 1e-9 ? 0.5 : 0.8;  // plateau
    if (near(b, 0.4)) return 0.5;                  // phase 2 at β = 1 − 0.6: the phase-1 error again
    if (near(b, 0.1) || near(b, 0.7)) return 0.45;  // two better, tied β
    return 0.9;
  });
  EXPECT_EQ(r.alpha, 0.6);
  EXPECT_EQ(r.beta, 0.7);
  EXPECT_EQ(r.error, 0.45);
}

TEST(FlexGridSearch, BetaFallsBackToZeroWhenPhaseTwoNeverReachesPhaseOne) {
  // Phase 1's best is α = 0.35 (error 0.2); phase 2 sees that error plus noise at every β, so no β is accepted.
  int calls = 0;
  const FlexSearchResult r = flex_grid_search([&](double a, double b) {
    const bool phase1 = ++calls <= kFlexGridPoints;
    const double base = 0.2 + std::fabs(a - 0.35);
    return phase1 ? base : base * (1.0 + 1e-12) + 1e-15 * b;
  });
  EXPECT_EQ(r.alpha, 0.35);
  EXPECT_EQ(r.beta, 0.0);   // the initial value, never evaluated as best
  EXPECT_EQ(r.error, 0.2);  // phase 1's error, which belongs to (0.35, 0.65)
}

TEST(FlexGridSearch, NoFallbackWhenPhaseTwoReproducesPhaseOne) {
  const FlexSearchResult r = flex_grid_search([&](double a, double b) {
    const double base = 0.2 + std::fabs(a - 0.35);
    return std::fabs(a + b - 1.0) < 1e-9 ? base : base + 0.1;
  });
  EXPECT_EQ(r.alpha, 0.35);
  EXPECT_EQ(r.beta, 0.65);
  EXPECT_EQ(r.error, 0.2);
}

TEST(FlexSearch, AllTiedGridPicksTheLastAlphaAndBeta) {
  // Every column max of X and of W is 1, so σ ≡ 1 at every (α, β) and all 42 errors are equal.
  std::mt19937 rng(5);
  Tensor x = random_matrix(32, 16, rng, 0.3f, DType::kBF16), w = random_matrix(24, 16, rng, 0.3f, DType::kBF16);
  for (Tensor* t : {&x, &w}) {
    float* p = t->mutable_data<float>();
    for (std::size_t i = 0; i < t->numel(); ++i) p[i] = std::clamp(p[i], -0.9f, 0.9f);
    for (std::int64_t c = 0; c < 16; ++c) p[c] = 1.0f;  // row 0: the column maxima
  }
  const double e0 = flex_error(x, {&w}, 0.0, 1.0, DType::kBF16);
  EXPECT_EQ(flex_error(x, {&w}, 1.0, 0.0, DType::kBF16), e0);
  const FlexSearchResult r = search_flex_alpha_beta(x, {&w}, DType::kBF16);
  EXPECT_EQ(r.alpha, 1.0);
  EXPECT_EQ(r.beta, 1.0);
  EXPECT_EQ(r.error, e0);
}

// The rule applied here, independently, to flex_error at every grid point.
FlexSearchResult reference_search(const Tensor& x, const std::vector<const Tensor*>& w, DType dt) {
  FlexSearchResult r{0.0, 0.0, std::numeric_limits<double>::infinity()};
  for (int i = 0; i <= 20; ++i) {
    const double a = (5 * i) / 100.0, e = flex_error(x, w, a, 1.0 - a, dt);
    if (e <= r.error) r = {a, 0.0, e};
  }
  for (int j = 0; j <= 20; ++j) {
    const double b = (5 * j) / 100.0, e = flex_error(x, w, r.alpha, b, dt);
    if (e <= r.error) r = {r.alpha, b, e};
  }
  return r;
}

TEST(FlexSearch, MatchesTheRuleOnFlexErrorWithOutlierChannels) {
  for (const DType dt : {DType::kBF16, DType::kF32}) {
    std::mt19937 rng(11);
    Tensor x = random_matrix(96, 48, rng, 1.0f, dt);
    for (std::int64_t t = 0; t < 96; ++t) {
      for (std::int64_t c : {5, 17, 40}) x.mutable_data<float>()[t * 48 + c] *= 30.0f;
    }
    const Tensor wk = random_matrix(16, 48, rng, 0.05f, dt), wq = random_matrix(40, 48, rng, 0.05f, dt);
    const FlexSearchResult r = search_flex_alpha_beta(x, {&wk, &wq}, dt);
    const FlexSearchResult ref = reference_search(x, {&wk, &wq}, dt);
    EXPECT_EQ(r.alpha, ref.alpha) << dtype_name(dt);
    EXPECT_EQ(r.beta, ref.beta) << dtype_name(dt);
    EXPECT_EQ(r.error, ref.error) << dtype_name(dt);
    EXPECT_GT(r.alpha, 0.0) << "outlier channels should favour moving scale into the weights";
    EXPECT_LT(r.error, flex_error(x, {&wk, &wq}, 0.0, 0.0, dt)) << "better than no smoothing";
  }
}

// 2,600 rows against 2,048 outputs: the error is summed in waves of 4 blocks of 256 rows per thread, so most
// grid points stop after the first wave (its partial error already exceeds the best); the pick and its error
// must not change, and the exact errors must not depend on the thread count (rows are summed in row order).
TEST(FlexSearch, StoppingEarlyPicksWhatTheFullGridPicksAtAnyThreadCount) {
  std::mt19937 rng(5);
  Tensor x = random_matrix(2600, 32, rng, 1.0f, DType::kBF16);
  for (std::int64_t t = 0; t < 2600; ++t) {
    for (std::int64_t c : {3, 21}) x.mutable_data<float>()[t * 32 + c] *= 40.0f;
  }
  const Tensor w = random_matrix(2048, 32, rng, 0.05f, DType::kBF16);
  const FlexSearchResult ref = reference_search(x, {&w}, DType::kBF16);
  for (const int threads : {1, 2, 3}) {
    FlexSearchResult r;
    double e = 0;
    {
      const moeslim::testing::ScopedThreads scoped(threads);
      r = search_flex_alpha_beta(x, {&w}, DType::kBF16);
      e = flex_error(x, {&w}, 0.35, 0.4, DType::kBF16);
    }
    EXPECT_EQ(r.alpha, ref.alpha) << threads;
    EXPECT_EQ(r.beta, ref.beta) << threads;
    EXPECT_EQ(r.error, ref.error) << threads;
    EXPECT_EQ(e, flex_error(x, {&w}, 0.35, 0.4, DType::kBF16)) << threads;
  }
  // The loss curve it reports: only points evaluated in full, each with its exact error; the pick among them;
  // most points stopped early here, so fewer than the grid's 42.
  const FlexSearchResult r = search_flex_alpha_beta(x, {&w}, DType::kBF16);
  ASSERT_FALSE(r.exact_points.empty());
  EXPECT_LT(r.exact_points.size(), 2u * kFlexGridPoints);
  bool has_pick = false;
  for (const FlexSearchPoint& p : r.exact_points) {
    EXPECT_EQ(p.error, flex_error(x, {&w}, p.alpha, p.beta, DType::kBF16)) << p.alpha << " " << p.beta;
    EXPECT_GE(p.error, r.error);
    // (phase 1 holds β = 1 − α in double, which can be an ulp from the grid's β: the same float32 exponent)
    has_pick = has_pick || (p.alpha == r.alpha && std::abs(p.beta - r.beta) < 1e-12 && p.error == r.error);
  }
  EXPECT_TRUE(has_pick);
}

// The pruned rule against the plain one on random error tables with ties and NaNs: a pruned point answers
// anything above the cutoff, and the pick must still be flex_grid_search's.
TEST(FlexGridSearchPruned, SamePickAsTheRuleOnTablesWithTiesAndNaNs) {
  std::mt19937 rng(3);
  const double values[] = {0.5, 0.625, 0.75, 1.0, std::numeric_limits<double>::quiet_NaN()};
  std::uniform_int_distribution<int> pick(0, 4);
  std::uniform_real_distribution<double> above(1e-9, 2.0);
  int pruned = 0;
  for (int trial = 0; trial < 500; ++trial) {
    double table[kFlexGridPoints][kFlexGridPoints];
    for (auto& row : table) {
      for (double& v : row) v = values[pick(rng)];
    }
    // Deterministic in the float32 exponents, as flex_error is: β = 1 − α lands on grid point 20 − i.
    const auto exact = [&](double a, double b) {
      return table[std::lround(a * 20)][std::lround(static_cast<float>(b) * 20)];
    };
    const FlexSearchResult ref = flex_grid_search(exact);
    const FlexSearchResult r = flex_grid_search_pruned([&](double a, double b, double cutoff) {
      const double e = exact(a, b);
      if (e > cutoff) {
        ++pruned;
        return cutoff + above(rng);
      }
      return e;
    });
    ASSERT_EQ(r.alpha, ref.alpha) << trial;
    ASSERT_EQ(r.beta, ref.beta) << trial;
    ASSERT_TRUE(r.error == ref.error || (std::isnan(r.error) && std::isnan(ref.error))) << trial;
  }
  EXPECT_GT(pruned, 1000) << "the cutoff should let most non-minimal points stop early";
}

TEST(FlexSearch, PhaseTwoReproducesPhaseOneExactlySoTheFallbackIsDormant) {
  // 1 − α is one ulp off the grid's β for these α, but both reach pow as the same float32 exponent.
  std::mt19937 rng(2);
  const Tensor x = random_matrix(32, 24, rng, 1.0f, DType::kF32), w = random_matrix(20, 24, rng, 0.1f, DType::kF32);
  for (int i : {11, 14, 16, 17, 18, 19}) {
    const double a = flex_grid_value(i);
    EXPECT_EQ(flex_error(x, {&w}, a, 1.0 - a, DType::kF32), flex_error(x, {&w}, a, flex_grid_value(20 - i), DType::kF32))
        << a;
  }
}

TEST(FlexSearch, MaxRowsTakesEvenlyStridedRows) {
  // Odd rows are half the even rows before them, so the strided half (rows 0, 2, 4, …) holds every column max
  // and the subsampled search must equal a full search on the even rows alone.
  std::mt19937 rng(7);
  const Tensor even = random_matrix(32, 16, rng, 1.0f, DType::kF32), w = random_matrix(24, 16, rng, 0.1f, DType::kF32);
  Tensor x = Tensor::zeros(DType::kF32, {64, 16});
  for (std::int64_t t = 0; t < 64; ++t) {
    for (std::int64_t c = 0; c < 16; ++c) {
      x.mutable_data<float>()[t * 16 + c] = even.data<float>()[(t / 2) * 16 + c] * (t % 2 == 0 ? 1.0f : 0.5f);
    }
  }
  const FlexSearchResult sub = search_flex_alpha_beta(x, {&w}, DType::kF32, {32});
  const FlexSearchResult ref = search_flex_alpha_beta(even, {&w}, DType::kF32);
  EXPECT_EQ(sub.alpha, ref.alpha);
  EXPECT_EQ(sub.beta, ref.beta);
  EXPECT_NEAR(sub.error, ref.error, 1e-6 * ref.error);
  const FlexSearchResult all = search_flex_alpha_beta(x, {&w}, DType::kF32, {64});
  EXPECT_EQ(all.error, search_flex_alpha_beta(x, {&w}, DType::kF32).error);
}

// ---------------------------------------------------------------------------------------------- scales

TEST(FlexScales, FollowTheCalculatorsFormula) {
  // α = β = 0.5 in F32: s = max(√a / √max(w, 1e-5), 1e-5).
  const std::vector<float> s = flex_scales({4.0f, 9.0f, 0.0f, 1.0f}, {1.0f, 4.0f, 2.0f, 0.0f}, 0.5, 0.5, DType::kF32);
  EXPECT_EQ(s, (std::vector<float>{2.0f, 1.5f, 1e-5f, 1.0f / std::sqrt(1e-5f)}));
  // α = 0.75, β = 0.25: 16^0.75 / 16^0.25 = 4; in BF16 each step rounds (81^0.75 = 27, 3^0.25 = 1.316 → 1.3125).
  const std::vector<float> b = flex_scales({16.0f, 81.0f}, {16.0f, 3.0f}, 0.75, 0.25, DType::kBF16);
  EXPECT_EQ(b[0], 4.0f);
  EXPECT_EQ(b[1], round_to_bf16(27.0f / 1.3125f));
  // α = 0: s = 1 / w^β, whatever a (even 0).
  EXPECT_EQ(flex_scales({0.0f}, {4.0f}, 0.0, 1.0, DType::kF32)[0], 0.25f);
}

// ---------------------------------------------------------------------------------------------- equivalences

struct Tolerance {
  DType dt;
  double tol;
};
const Tolerance kTolerances[] = {{DType::kF32, 2e-6}, {DType::kBF16, 1.5e-2}};

TEST(FlexSmoothNormLinear, SubgraphIsUnchanged) {
  for (const Tolerance& tl : kTolerances) {
    std::mt19937 rng(21);
    const Matrix x = outlier_tokens(24, 32, rng, {3, 9}, 20.0);
    Tensor gamma = f32_vector(std::vector<float>(32, 0.0f));
    for (std::int64_t j = 0; j < 32; ++j) gamma.mutable_data<float>()[j] = round_to_float_dtype(0.5f + 0.05f * j, tl.dt);
    Tensor wk = random_matrix(8, 32, rng, 0.1f, tl.dt), wq = random_matrix(16, 32, rng, 0.1f, tl.dt);
    const Matrix h = rms_norm(x, gamma);
    const Matrix yk = linear(h, wk), yq = linear(h, wq);

    flex_smooth_norm_linear(gamma, {&wk, &wq}, column_abs_max(h), 0.6, 0.3, tl.dt);
    const Matrix h2 = rms_norm(x, gamma);
    EXPECT_LT(relative_max_diff(linear(h2, wk), yk), tl.tol) << dtype_name(tl.dt);
    EXPECT_LT(relative_max_diff(linear(h2, wq), yq), tl.tol) << dtype_name(tl.dt);
    EXPECT_LT(column_abs_max(h2)[3], column_abs_max(h)[3] / 2) << "the outlier channel shrinks";
  }
}

// o_proj(attention(v_proj(x))) with arbitrary per-q-head token mixing P_h (attention is linear in V).
Matrix attention_output(const Matrix& x, const Tensor& wv, const Tensor& wo, const std::vector<Matrix>& p,
                        std::int64_t q_heads, std::int64_t kv_heads, std::int64_t hd) {
  const Matrix v = linear(x, wv);
  Matrix z(x.size(), std::vector<double>(static_cast<std::size_t>(q_heads * hd), 0.0));
  for (std::int64_t h = 0; h < q_heads; ++h) {
    const std::int64_t kv = h / (q_heads / kv_heads);
    for (std::size_t t = 0; t < x.size(); ++t) {
      for (std::size_t s = 0; s < x.size(); ++s) {
        for (std::int64_t d = 0; d < hd; ++d) z[t][h * hd + d] += p[h][t][s] * v[s][kv * hd + d];
      }
    }
  }
  return linear(z, wo);
}

TEST(FlexSmoothOv, SubgraphIsUnchanged) {
  const std::int64_t q = 4, kv = 2, hd = 4, hidden = 12, tokens = 6;
  for (const Tolerance& tl : kTolerances) {
    std::mt19937 rng(31);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::vector<Matrix> p(q, Matrix(tokens, std::vector<double>(tokens)));
    for (auto& m : p) {
      for (auto& row : m) {
        for (double& v : row) v = uni(rng);
      }
    }
    const Matrix x = outlier_tokens(tokens, hidden, rng, {}, 1.0);
    Tensor wv = random_matrix(kv * hd, hidden, rng, 0.3f, tl.dt), wo = random_matrix(hidden, q * hd, rng, 0.1f, tl.dt);
    for (std::int64_t r = 0; r < kv * hd; r += 3) {
      for (std::int64_t c = 0; c < hidden; ++c) wv.mutable_data<float>()[r * hidden + c] *= 8.0f;  // outlier channels
    }
    const Matrix y = attention_output(x, wv, wo, p, q, kv, hd);
    std::vector<float> a(q * hd);
    for (std::int64_t c = 0; c < q * hd; ++c) a[c] = 0.5f + 0.1f * static_cast<float>(c % 7) + (c % hd == 0 ? 9.0f : 0.0f);

    flex_smooth_ov(wv, wo, a, q, kv, hd, 0.5, 0.5, tl.dt);
    EXPECT_LT(relative_max_diff(attention_output(x, wv, wo, p, q, kv, hd), y), tl.tol) << dtype_name(tl.dt);
  }
}

TEST(FlexSmoothOv, GroupMaxTakesMaxOfAAndWOverTheQHeadsOfAKvHead) {
  // q = 4, kv = 2 (g = 2), head_dim = 1: kv head 0 serves q heads 0, 1; kv head 1 serves 2, 3.
  Tensor wv = f32_matrix(2, 1, {1.0f, 1.0f});
  Tensor wo = f32_matrix(1, 4, {4.0f, 1.0f, 1.0f, 9.0f});
  flex_smooth_ov(wv, wo, {1.0f, 16.0f, 25.0f, 4.0f}, 4, 2, 1, 0.5, 0.5, DType::kF32);
  // group 0: a_max = 16, w_max = 4 → G = 4/2 = 2; group 1: a_max = 25, w_max = 9 → G = 5/3.
  const float g1 = 5.0f / 3.0f;
  EXPECT_EQ(floats_of(wv), (std::vector<float>{0.5f, 1.0f / g1}));
  EXPECT_EQ(floats_of(wo), (std::vector<float>{8.0f, 2.0f, g1, 9.0f * g1}));
}

TEST(SmoothMoeInput, RouterLogitsAndExpertOutputsAreUnchanged) {
  const std::int64_t hidden = 24, inter = 16, experts = 3;
  for (const Tolerance& tl : kTolerances) {
    std::mt19937 rng(41);
    const Matrix x = outlier_tokens(20, hidden, rng, {2, 11}, 25.0);
    Tensor gamma = f32_vector(std::vector<float>(hidden, 1.0f));
    Tensor router = random_matrix(experts, hidden, rng, 0.2f, tl.dt);
    std::vector<Tensor> gate, up, down;
    for (std::int64_t e = 0; e < experts; ++e) {
      gate.push_back(random_matrix(inter, hidden, rng, 0.1f, tl.dt));
      up.push_back(random_matrix(inter, hidden, rng, 0.1f, tl.dt));
      down.push_back(random_matrix(hidden, inter, rng, 0.1f, tl.dt));
    }
    const Matrix h = rms_norm(x, gamma);
    const Matrix logits = linear(h, router);
    std::vector<Matrix> outs;
    for (std::int64_t e = 0; e < experts; ++e) outs.push_back(swiglu(h, gate[e], up[e], down[e]));

    std::vector<Tensor*> gate_up;
    for (std::int64_t e = 0; e < experts; ++e) {
      gate_up.push_back(&gate[e]);
      gate_up.push_back(&up[e]);
    }
    smooth_moe_input(gamma, router, gate_up, column_abs_max(h), 0.5, 0.5, tl.dt);
    const Matrix h2 = rms_norm(x, gamma);
    EXPECT_LT(relative_max_diff(linear(h2, router), logits), tl.tol) << dtype_name(tl.dt);
    for (std::int64_t e = 0; e < experts; ++e) {
      EXPECT_LT(relative_max_diff(swiglu(h2, gate[e], up[e], down[e]), outs[e]), tl.tol) << dtype_name(tl.dt);
    }
  }
}

TEST(SmoothUpDown, ExpertOutputIsUnchanged) {
  const std::int64_t hidden = 24, inter = 16;
  for (const Tolerance& tl : kTolerances) {
    std::mt19937 rng(51);
    const Matrix x = outlier_tokens(20, hidden, rng, {}, 1.0);
    Tensor gate = random_matrix(inter, hidden, rng, 0.2f, tl.dt), up = random_matrix(inter, hidden, rng, 0.2f, tl.dt);
    Tensor down = random_matrix(hidden, inter, rng, 0.1f, tl.dt);
    const Matrix y = swiglu(x, gate, up, down);
    Matrix hmid = linear(x, gate);
    const Matrix u = linear(x, up);
    for (std::size_t t = 0; t < hmid.size(); ++t) {
      for (std::size_t j = 0; j < hmid[t].size(); ++j) hmid[t][j] = silu(hmid[t][j]) * u[t][j];
    }
    smooth_up_down(up, down, column_abs_max(hmid), 0.5, 0.5, tl.dt);
    EXPECT_LT(relative_max_diff(swiglu(x, gate, up, down), y), tl.tol) << dtype_name(tl.dt);
  }
}

TEST(SmoothUpDown, ExpertWithoutTokensIsLeftAlone) {
  std::mt19937 rng(52);
  Tensor up = random_matrix(8, 4, rng, 0.2f, DType::kBF16), down = random_matrix(4, 8, rng, 0.2f, DType::kBF16);
  const std::vector<float> up0 = floats_of(up), down0 = floats_of(down);
  smooth_up_down(up, down, {}, 0.5, 0.5, DType::kBF16);
  EXPECT_EQ(floats_of(up), up0);
  EXPECT_EQ(floats_of(down), down0);
}

// ---------------------------------------------------------------------------------------------- int8 error

TEST(SmoothMoeInput, LowersPerTokenInt8ErrorOfTheExpertInput) {
  const std::int64_t hidden = 64, inter = 32;
  std::mt19937 rng(61);
  const Matrix x = outlier_tokens(64, hidden, rng, {7, 30}, 50.0);
  Tensor gamma = f32_vector(std::vector<float>(hidden, 1.0f)), router = random_matrix(4, hidden, rng, 0.1f, DType::kF32);
  Tensor gate = random_matrix(inter, hidden, rng, 0.1f, DType::kF32), up = random_matrix(inter, hidden, rng, 0.1f, DType::kF32);
  const Matrix h = rms_norm(x, gamma);
  const Matrix g_ref = linear(h, gate), u_ref = linear(h, up);
  const double before = relative_l2(linear(per_token_int8(h), gate), g_ref) + relative_l2(linear(per_token_int8(h), up), u_ref);

  smooth_moe_input(gamma, router, {&gate, &up}, column_abs_max(h), 0.5, 0.5, DType::kF32);
  const Matrix h2 = rms_norm(x, gamma);
  const double after = relative_l2(linear(per_token_int8(h2), gate), g_ref) + relative_l2(linear(per_token_int8(h2), up), u_ref);
  EXPECT_LT(after, before / 2) << before << " -> " << after;
}

TEST(SmoothUpDown, LowersPerTokenInt8ErrorOfDownProjInput) {
  const std::int64_t hidden = 48, inter = 64;
  std::mt19937 rng(71);
  const Matrix x = outlier_tokens(64, hidden, rng, {}, 1.0);
  Tensor gate = random_matrix(inter, hidden, rng, 0.2f, DType::kF32), up = random_matrix(inter, hidden, rng, 0.2f, DType::kF32);
  Tensor down = random_matrix(hidden, inter, rng, 0.1f, DType::kF32);
  for (std::int64_t j : {5, 40}) {
    for (std::int64_t c = 0; c < hidden; ++c) up.mutable_data<float>()[j * hidden + c] *= 40.0f;  // outlier channels of h
  }
  const auto mid = [&](const Tensor& upw) {
    Matrix hm = linear(x, gate);
    const Matrix u = linear(x, upw);
    for (std::size_t t = 0; t < hm.size(); ++t) {
      for (std::size_t j = 0; j < hm[t].size(); ++j) hm[t][j] = silu(hm[t][j]) * u[t][j];
    }
    return hm;
  };
  const Matrix h = mid(up), y = linear(h, down);
  const double before = relative_l2(linear(per_token_int8(h), down), y);
  smooth_up_down(up, down, column_abs_max(h), 0.5, 0.5, DType::kF32);
  const double after = relative_l2(linear(per_token_int8(mid(up)), down), y);
  EXPECT_LT(after, before / 3) << before << " -> " << after;
}

// ---------------------------------------------------------------------------------------------- shape errors

void expect_invalid(const std::function<void()>& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "no error for " << field;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(e.field().find(field), std::string::npos) << "field '" << e.field() << "', wanted " << field;
  }
}

TEST(FlexSmoothing, ShapeErrorsNameTheTensor) {
  const Tensor x = f32_matrix(2, 3, {1, 2, 3, 4, 5, 6});
  const Tensor w3 = f32_matrix(2, 3, {1, 2, 3, 4, 5, 6}), w2 = f32_matrix(3, 2, {1, 2, 3, 4, 5, 6});
  expect_invalid([&] { flex_error(x, {&w2}, 0.5, 0.5, DType::kF32); }, "flex search weight 0");
  expect_invalid([&] { flex_error(x, {}, 0.5, 0.5, DType::kF32); }, "flex search weights");
  expect_invalid([&] { flex_error(f32_vector({1, 2}), {&w3}, 0.5, 0.5, DType::kF32); }, "flex search activations");
  expect_invalid([&] { flex_error(x, {&w3}, 1.5, 0.5, DType::kF32); }, "alpha");
  expect_invalid([&] { flex_error(x, {&w3}, 0.5, 0.5, DType::kI8); }, "float_dtype");
  expect_invalid([&] { search_flex_alpha_beta(x, {&w3, &w2}, DType::kF32); }, "flex search weight 1");
  expect_invalid([&] { flex_scales({1, 2}, {1}, 0.5, 0.5, DType::kF32); }, "weight statistics");

  Tensor g3 = f32_vector({1, 1, 1}), lin = f32_matrix(2, 3, {1, 2, 3, 4, 5, 6}), bad = f32_matrix(2, 2, {1, 2, 3, 4});
  expect_invalid([&] { flex_smooth_norm_linear(g3, {&bad}, {1, 1, 1}, 0.5, 0.5, DType::kF32); }, "smoothed linear");
  expect_invalid([&] { flex_smooth_norm_linear(g3, {&lin}, {1, 1}, 0.5, 0.5, DType::kF32); }, "norm output statistics");
  expect_invalid([&] { flex_smooth_norm_linear(g3, {&lin, &lin}, {1, 1, 1}, 0.5, 0.5, DType::kF32); }, "smoothed linears");

  Tensor wv = f32_matrix(4, 3, std::vector<float>(12, 1.0f)), wo = f32_matrix(3, 8, std::vector<float>(24, 1.0f));
  const std::vector<float> a8(8, 1.0f);
  expect_invalid([&] { flex_smooth_ov(wv, wo, a8, 3, 2, 2, 0.5, 0.5, DType::kF32); }, "attention heads");
  expect_invalid([&] { flex_smooth_ov(wv, wo, a8, 4, 1, 2, 0.5, 0.5, DType::kF32); }, "v_proj weight");
  expect_invalid([&] { flex_smooth_ov(wv, wo, a8, 2, 2, 2, 0.5, 0.5, DType::kF32); }, "o_proj weight");
  expect_invalid([&] { flex_smooth_ov(wv, wo, {1, 1}, 4, 2, 2, 0.5, 0.5, DType::kF32); }, "o_proj input statistics");

  Tensor router = f32_matrix(2, 3, std::vector<float>(6, 1.0f)), gate = f32_matrix(4, 3, std::vector<float>(12, 1.0f));
  Tensor router_bad = f32_matrix(2, 4, std::vector<float>(8, 1.0f));
  expect_invalid([&] { smooth_moe_input(g3, router_bad, {&gate}, {1, 1, 1}, 0.5, 0.5, DType::kF32); }, "router weight");
  expect_invalid([&] { smooth_moe_input(g3, router, {&gate, &bad}, {1, 1, 1}, 0.5, 0.5, DType::kF32); },
                 "expert gate/up weight");
  expect_invalid([&] { smooth_moe_input(g3, router, {&gate, &router}, {1, 1, 1}, 0.5, 0.5, DType::kF32); },
                 "expert gate/up weights");
  expect_invalid([&] { smooth_moe_input(g3, router, {&gate}, {1, 1}, 0.5, 0.5, DType::kF32); }, "MoE input statistics");
  Tensor g4 = f32_vector({1, 1, 1, 1});
  expect_invalid([&] { smooth_moe_input(g4, router, {&gate}, {1, 1, 1}, 0.5, 0.5, DType::kF32); }, "router weight");

  Tensor up = f32_matrix(4, 3, std::vector<float>(12, 1.0f)), down = f32_matrix(3, 4, std::vector<float>(12, 1.0f));
  expect_invalid([&] { smooth_up_down(up, gate, {1, 1, 1, 1}, 0.5, 0.5, DType::kF32); }, "down_proj weight");
  expect_invalid([&] { smooth_up_down(up, down, {1, 1, 1}, 0.5, 0.5, DType::kF32); }, "down_proj input statistics");
  expect_invalid([&] { smooth_up_down(up, down, {1, 1, 1, 1}, 0.5, -0.1, DType::kF32); }, "beta");
}

}  // namespace
}  // namespace moeslim::quant
