// kernels/dense_linalg.h against plain double loops:
//  * matmul on strided and transposed views, across its tile boundaries, accumulating, the lower-triangle part;
//  * the Gram matrix over its row chunks (512 rows, and fewer padded to a multiple of 64) and accumulated calls;
//  * the Cholesky factor and the triangular inverse of random SPD matrices of sizes 1 to 2048 (blocked at every
//    level: unblocked ≤ 32, blocks of 32, blocks of 128, partial last blocks);
//  * diagonal scaling by powers of four commutes with the factorisation exactly (no accuracy lost however far
//    apart the diagonal's magnitudes are), and ill-conditioned scalings stay accurate relative to the scale;
//  * non-positive-definite matrices name the failing pivot;
//  * the same bits on 1 and 2 threads, and on the portable and AVX-512 paths of the rank-one update.
#include "kernels/dense_linalg.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/scoped_threads.h"
#include "core/error.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using moeslim::testing::ScopedThreads;
using testing::bits_of_all;
using testing::random_floats;

using Floats = std::vector<float>;
using Doubles = std::vector<double>;

// A random symmetric positive definite [n, n] (both triangles): G·Gᵀ/r for G [n, r] uniform in [−1, 1], plus a
// diagonal in [0.5, 1.5]. Eigenvalues in ~[0.5, 1.5 + n/3·…]; condition number ~10–700 for these sizes.
Floats random_spd(std::int64_t n, std::uint32_t seed, std::int64_t rank = 24) {
  const Floats g = random_floats(static_cast<std::size_t>(n * rank), seed);
  const Floats d = random_floats(static_cast<std::size_t>(n), seed + 1, 0.5f, 1.5f);
  Floats a(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (std::int64_t k = 0; k < rank; ++k) s += static_cast<double>(g[i * rank + k]) * g[j * rank + k];
      a[i * n + j] = a[j * n + i] = static_cast<float>(s / static_cast<double>(rank) + (i == j ? d[i] : 0.0));
    }
  }
  return a;
}

// Cholesky in double, lower, from the lower triangle of a.
Doubles reference_cholesky(const Floats& a, std::int64_t n) {
  Doubles l(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::int64_t k = 0; k < j; ++k) d -= l[j * n + k] * l[j * n + k];
    l[j * n + j] = std::sqrt(d);
    for (std::int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::int64_t k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / l[j * n + j];
    }
  }
  return l;
}

// Inverse of the lower triangle of l in double, by forward substitution.
Doubles reference_inverse(const Floats& l, std::int64_t n) {
  Doubles x(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t j = 0; j < n; ++j) {
    x[j * n + j] = 1.0 / l[j * n + j];
    for (std::int64_t i = j + 1; i < n; ++i) {
      double s = 0.0;
      for (std::int64_t k = j; k < i; ++k) s += static_cast<double>(l[i * n + k]) * x[k * n + j];
      x[i * n + j] = -s / l[i * n + i];
    }
  }
  return x;
}

// max over the lower triangle of |got − want| / scale(i, j).
template <class Scale>
double worst_lower(const Floats& got, const Doubles& want, std::int64_t n, Scale scale) {
  double worst = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) {
      worst = std::max(worst, std::fabs(got[i * n + j] - want[i * n + j]) / scale(i, j));
    }
  }
  return worst;
}

const std::int64_t kSizes[] = {1, 7, 32, 33, 64, 65, 200, 300};

// ---- matmul ----

TEST(DenseLinalgMatmul, StridedViewsMatchDoubleLoops) {
  // 600 × 530: two tiles each way with partial second tiles; K = 70.
  constexpr std::int64_t m = 600, n = 530, k = 70;
  const Floats a = random_floats(m * k, 1);   // stored as Aᵀ [k, m]
  const Floats b = random_floats(k * n, 2);   // stored as B [k, n] with row stride n + 3
  Floats b_padded((n + 3) * k, 7.0f);
  for (std::int64_t r = 0; r < k; ++r) std::copy_n(b.begin() + r * n, n, b_padded.begin() + r * (n + 3));
  const Floats c0 = random_floats(m * (n + 5), 3);
  for (bool accumulate : {false, true}) {
    Floats c = c0;
    matmul(row_major(a.data(), k, m, m).transposed(), row_major(b_padded.data(), k, n, n + 3), c.data(), n + 5,
           accumulate);
    double worst = 0.0;
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double s = accumulate ? c0[i * (n + 5) + j] : 0.0;
        for (std::int64_t p = 0; p < k; ++p) s += static_cast<double>(a[p * m + i]) * b[p * n + j];
        worst = std::max(worst, std::fabs(c[i * (n + 5) + j] - s));
      }
      for (std::int64_t j = n; j < n + 5; ++j) ASSERT_EQ(c[i * (n + 5) + j], c0[i * (n + 5) + j]) << "past N";
    }
    EXPECT_LT(worst, 2e-5) << "accumulate " << accumulate;  // |terms| ≤ 1, 70 of them: f32 rounding ~1e-6
  }
}

TEST(DenseLinalgMatmul, LowerTrianglePartAndEmptyK) {
  constexpr std::int64_t n = 1100, k = 16;  // three tile rows: the tiles above the diagonal are skipped
  const Floats a = random_floats(n * k, 4);
  Floats c(n * n, 5.0f);
  matmul(row_major(a.data(), n, k, k), row_major(a.data(), n, k, k).transposed(), c.data(), n, false,
         MatmulPart::kLowerTriangle);
  for (std::int64_t i = 0; i < n; i += 7) {
    for (std::int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (std::int64_t p = 0; p < k; ++p) s += static_cast<double>(a[i * k + p]) * a[j * k + p];
      ASSERT_NEAR(c[i * n + j], s, 1e-5) << i << ", " << j;
    }
  }
  EXPECT_EQ(c[0 * n + 1000], 5.0f);  // in a tile strictly above the diagonal: untouched
  // K = 0: C = 0, or left alone when accumulating.
  Floats d(4, 3.0f);
  matmul(row_major(a.data(), 2, 0, 1), row_major(a.data(), 0, 2, 2), d.data(), 2, true);
  EXPECT_EQ(d, Floats(4, 3.0f));
  matmul(row_major(a.data(), 2, 0, 1), row_major(a.data(), 0, 2, 2), d.data(), 2, false);
  EXPECT_EQ(d, Floats(4, 0.0f));
  EXPECT_THROW(matmul(row_major(a.data(), 2, 3, 3), row_major(a.data(), 2, 2, 2), d.data(), 2, false), Error);
}

// ---- Gram matrix ----

TEST(DenseLinalgGram, MatchesADoubleLoopOverEveryRowBucket) {
  // 1100 rows as 1 + 600 + 0 + 499: one row padded to 64, a chunk of 512 and 88 rows padded to 128, nothing, and
  // 499 rows padded to 512. Columns 1, 7 (tiny), 200 and 530 (two tiles).
  constexpr std::int64_t rows = 1100;
  for (std::int64_t cols : {1, 7, 200, 530}) {
    const Floats x = random_floats(rows * (cols + 2), 10 + static_cast<std::uint32_t>(cols));
    const std::int64_t ldx = cols + 2;  // strided rows
    Floats h(cols * cols, 0.0f);
    gram_matrix(x.data(), 1, cols, ldx, h.data(), cols, false);
    gram_matrix(x.data() + ldx, 600, cols, ldx, h.data(), cols, true);
    gram_matrix(x.data() + 601 * ldx, 0, cols, ldx, h.data(), cols, true);
    gram_matrix(x.data() + 601 * ldx, 499, cols, ldx, h.data(), cols, true);
    double worst = 0.0;
    for (std::int64_t i = 0; i < cols; ++i) {
      for (std::int64_t j = 0; j <= i; ++j) {
        double s = 0.0, ii = 0.0, jj = 0.0;
        for (std::int64_t r = 0; r < rows; ++r) {
          s += static_cast<double>(x[r * ldx + i]) * x[r * ldx + j];
          ii += static_cast<double>(x[r * ldx + i]) * x[r * ldx + i];
          jj += static_cast<double>(x[r * ldx + j]) * x[r * ldx + j];
        }
        worst = std::max(worst, std::fabs(h[i * cols + j] - s) / std::sqrt(ii * jj));
      }
    }
    // Float32 sums of 1100 products: the worst case is 1100·2⁻²⁴ ≈ 7e-5 of √(H_ii·H_jj); typical ~1e-6.
    // A dropped or doubled bucket of rows would be off by ≥ 1e-3.
    EXPECT_LT(worst, 1e-5) << cols << " columns";
  }
  Floats h(9, 4.0f);
  gram_matrix(nullptr, 0, 3, 3, h.data(), 3, false);
  EXPECT_EQ(h[0], 0.0f);
  EXPECT_EQ(h[2 * 3 + 1], 0.0f);
  EXPECT_THROW(gram_matrix(h.data(), 1, 3, 2, h.data(), 3, false), Error);
}

// ---- Cholesky and the triangular inverse ----

TEST(DenseLinalgCholesky, MatchesDoubleLoopsOnRandomSpdMatrices) {
  for (std::int64_t n : kSizes) {
    const Floats a = random_spd(n, 20 + static_cast<std::uint32_t>(n));
    Floats l = a;
    cholesky_lower(l.data(), n, n);
    const Doubles want = reference_cholesky(a, n);
    // Relative to √A_ii (the size of row i of L): float32 backward error ~n·u·cond.
    const double err = worst_lower(l, want, n, [&](std::int64_t i, std::int64_t) { return std::sqrt(a[i * n + i]); });
    EXPECT_LT(err, 1e-4) << "n = " << n;

    Floats x = l;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = i + 1; j < n; ++j) x[i * n + j] = 1234.5f;  // above the diagonal: not touched
    }
    invert_lower_triangular(x.data(), n, n);
    const Doubles inv = reference_inverse(l, n);
    double worst = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j <= i; ++j) {
        worst = std::max(worst, std::fabs(x[i * n + j] - inv[i * n + j]) /
                                    std::sqrt(std::fabs(inv[i * n + i] * inv[j * n + j])));
      }
      for (std::int64_t j = i + 1; j < n; ++j) ASSERT_EQ(x[i * n + j], 1234.5f) << "n " << n;
    }
    EXPECT_LT(worst, 1e-4) << "n = " << n;
  }
}

TEST(DenseLinalgCholesky, LargeMatrixFactorAndInverseHaveSmallResiduals) {
  // 2000: 15 blocks of 128 and a partial one of 80, with 512-wide GEMM tiles. The n³ double reference would take
  // seconds, so sampled rows of A − L·Lᵀ and of L·X − I are checked instead.
  constexpr std::int64_t n = 2000;
  const Floats a = random_spd(n, 30, 16);
  Floats l = a;
  cholesky_lower(l.data(), n, n);
  Floats x = l;
  invert_lower_triangular(x.data(), n, n);
  double factor_residual = 0.0, inverse_residual = 0.0;
  for (std::int64_t i = 3; i < n; i += 131) {
    for (std::int64_t j = 0; j < n; ++j) {
      double llt = 0.0;
      for (std::int64_t k = 0; k <= std::min(i, j); ++k) llt += static_cast<double>(l[i * n + k]) * l[j * n + k];
      factor_residual =
          std::max(factor_residual, std::fabs(llt - a[i * n + j]) / std::sqrt(a[i * n + i] * a[j * n + j]));
      if (j <= i) {
        double lx = 0.0;
        for (std::int64_t k = j; k <= i; ++k) lx += static_cast<double>(l[i * n + k]) * x[k * n + j];
        inverse_residual = std::max(inverse_residual, std::fabs(lx - (i == j ? 1.0 : 0.0)));
      }
    }
  }
  EXPECT_LT(factor_residual, 1e-5);  // backward stable: ~n·u at worst, ~1e-7 typical
  EXPECT_LT(inverse_residual, 1e-4);
}

TEST(DenseLinalgCholesky, DiagonalScalingIsExactAndIllConditionedScalingStaysAccurate) {
  // S = D·A·D with D = 2^e (e from −10 to 10, A's condition number then grows by up to 2^40): every operation of
  // the factorisation and of the inverse sees operands scaled by powers of two, so L(S) = D·L(A) and
  // L(S)⁻¹ = L(A)⁻¹·D⁻¹ bit for bit; nothing is lost to the diagonal's spread.
  constexpr std::int64_t n = 300;
  const Floats a = random_spd(n, 40);
  std::vector<float> d(n);
  for (std::int64_t i = 0; i < n; ++i) d[i] = std::ldexp(1.0f, static_cast<int>(i * 7 % 21) - 10);
  Floats s(n * n);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) s[i * n + j] = a[i * n + j] * d[i] * d[j];
  }
  Floats la = a, ls = s;
  cholesky_lower(la.data(), n, n);
  cholesky_lower(ls.data(), n, n);
  Floats xa = la, xs = ls;
  invert_lower_triangular(xa.data(), n, n);
  invert_lower_triangular(xs.data(), n, n);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) {
      ASSERT_EQ(ls[i * n + j], la[i * n + j] * d[i]) << i << ", " << j;
      ASSERT_EQ(xs[i * n + j], xa[i * n + j] / d[j]) << i << ", " << j;
    }
  }
  // A spread that is not a power of two (1e-3 to 1e3): each element accurate relative to its row's scale.
  for (std::int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(std::pow(10.0, 3.0 * std::sin(0.37 * i)));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) s[i * n + j] = a[i * n + j] * d[i] * d[j];
  }
  ls = s;
  cholesky_lower(ls.data(), n, n);
  const Doubles want = reference_cholesky(s, n);
  EXPECT_LT(worst_lower(ls, want, n, [&](std::int64_t i, std::int64_t) { return std::sqrt(s[i * n + i]); }), 1e-4);
}

TEST(DenseLinalgCholesky, NotPositiveDefiniteNamesThePivot) {
  // Negative pivot in the unblocked part, after an update ([[1, 2], [2, 1]]: 1 − 2² = −3), deep in the blocked
  // part (index 250 of 300), and NaN.
  Floats two = {1, 2, 2, 1};
  auto failed = try_cholesky_lower(two.data(), 2, 2);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->index, 1);
  EXPECT_EQ(failed->value, -3.0f);

  constexpr std::int64_t n = 300;
  Floats a = random_spd(n, 50);
  for (std::int64_t j = 0; j < n; ++j) a[250 * n + j] = a[j * n + 250] = 0.0f;
  a[250 * n + 250] = -1.0f;
  Floats copy = a;
  failed = try_cholesky_lower(copy.data(), n, n);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->index, 250);
  EXPECT_EQ(failed->value, -1.0f);
  try {
    copy = a;
    cholesky_lower(copy.data(), n, n);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.detail().find("index 250 of 300"), std::string::npos) << e.detail();
    EXPECT_NE(e.detail().find("-1"), std::string::npos) << e.detail();
  }
  a[250 * n + 250] = std::numeric_limits<float>::quiet_NaN();
  failed = try_cholesky_lower(a.data(), n, n);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->index, 250);
  EXPECT_TRUE(std::isnan(failed->value));
  Floats inf = {std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(try_cholesky_lower(inf.data(), 1, 1).has_value());
}

// ---- determinism ----

TEST(DenseLinalgThreads, OneAndTwoThreadsGiveTheSameBits) {
  // The shapes of a Qwen3-30B expert: a 2048-column Gram of 600 rows, the Cholesky and inverse of a 2048 matrix
  // (GEMM tiles with K = 32 and 128), and GPTQ's updates (quant/gptq.cc: K = 128 and 16, C rows of 768 floats,
  // and of 2048 padded to 2064). (Also checked by hand with 3, 4 and 8 threads on this 2-core machine.)
  constexpr std::int64_t n = 2048, rows = 600;
  const Floats xs = random_floats(rows * n, 60);
  const Floats a = random_spd(n, 61, 8);
  const Floats f = random_floats(n * n, 62);
  const Floats e = random_floats(128 * 2064, 63);
  struct Results {
    Floats gram, factor, inverse, gate, down;
  };
  auto run = [&] {
    Results r;
    r.gram.assign(n * n, 0.0f);
    gram_matrix(xs.data(), rows, n, n, r.gram.data(), n, false);
    r.factor = a;
    cholesky_lower(r.factor.data(), n, n);
    r.inverse = r.factor;
    invert_lower_triangular(r.inverse.data(), n, n);
    r.gate.assign(1920 * 768, 0.5f);
    matmul(row_major(f.data() + 128 * n, 1920, 128, n), row_major(e.data(), 128, 768, 768), r.gate.data(), 768, true);
    matmul(row_major(f.data() + 16 * n, 112, 16, n), row_major(e.data(), 16, 768, 768), r.gate.data(), 768, true);
    r.down.assign(640 * 2064, 0.5f);
    matmul(row_major(f.data() + 128 * n, 640, 128, n), row_major(e.data(), 128, 2048, 2064), r.down.data(), 2064,
           true);
    return r;
  };
  Results one, two;
  {
    ScopedThreads threads(1);
    one = run();
  }
  {
    ScopedThreads threads(2);
    two = run();
  }
  EXPECT_EQ(bits_of_all(one.gram), bits_of_all(two.gram));
  EXPECT_EQ(bits_of_all(one.factor), bits_of_all(two.factor));
  EXPECT_EQ(bits_of_all(one.inverse), bits_of_all(two.inverse));
  EXPECT_EQ(bits_of_all(one.gate), bits_of_all(two.gate));
  EXPECT_EQ(bits_of_all(one.down), bits_of_all(two.down));
}

TEST(DenseLinalgOuterProduct, BothPathsMatchTheLoop) {
  constexpr std::int64_t rows = 5, cols = 37, ldc = 40;
  const Floats x = random_floats(rows, 70), y = random_floats(cols, 71), c0 = random_floats(rows * ldc, 72);
  Floats want = c0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = 0; j < cols; ++j) want[r * ldc + j] = c0[r * ldc + j] + x[r] * y[j];
  }
  for (KernelIsa isa : testing::runnable_isas()) {
    testing::ScopedKernelIsa scoped(isa);
    Floats c = c0;
    add_outer_product(c.data(), rows, cols, ldc, x.data(), y.data());
    EXPECT_EQ(bits_of_all(c), bits_of_all(want)) << kernel_isa_name(isa);
  }
}

}  // namespace
}  // namespace moeslim::kernels
