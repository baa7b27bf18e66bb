// The --rot matrices (docs/msmodelslim-algorithms.md §5.2), checked against constructions written
// out naively here: explicit dense matrices, an explicit torch.cat column shift, double-precision products.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "core/error.h"
#include "quant/hadamard.h"
#include "rotation/rotation_test_util.h"

namespace moeslim::quant {
namespace {

TEST(SylvesterHadamard, FollowsTheRecursionAndIsNaturalOrder) {
  for (std::int64_t n = 1; n <= 32; n *= 2) {
    const Dense h = sylvester_hadamard(n);
    const Dense h2 = sylvester_hadamard(2 * n);
    const std::int64_t m = 2 * n;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        const double v = h[i * n + j];
        EXPECT_EQ(h2[i * m + j], v);
        EXPECT_EQ(h2[i * m + j + n], v);
        EXPECT_EQ(h2[(i + n) * m + j], v);
        EXPECT_EQ(h2[(i + n) * m + j + n], -v);
      }
    }
    // Natural (Sylvester) order: H[i][j] = (−1)^popcount(i & j).
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < m; ++j)
        EXPECT_EQ(h2[i * m + j], std::popcount(static_cast<unsigned>(i & j)) % 2 ? -1.0 : 1.0);
  }
  EXPECT_THROW(sylvester_hadamard(24), Error);
}

// The spec derives s1, s2 from torch.manual_seed(42) + randint(0, 2) = mt19937(42) output % 2; the constants are
// hard-coded, this only confirms they are those draws.
TEST(HadamardSigns, AreTheFirst64Mt19937DrawsOfSeed42) {
  std::mt19937 gen(42);
  for (const HadamardSigns* s : {&kR1Signs, &kR2Signs}) {
    for (std::int8_t v : *s) EXPECT_EQ(v, static_cast<int>(gen() % 2) * 2 - 1);
  }
}

TEST(SignedHadamardBlock, IsDiagSTimesH32OverSqrt32AndOrthogonal) {
  const std::vector<float> hb = signed_hadamard_block(kR1Signs);
  const Dense h = sylvester_hadamard(32);
  Dense d(hb.begin(), hb.end());
  for (std::int64_t i = 0; i < 32; ++i)
    for (std::int64_t j = 0; j < 32; ++j)
      EXPECT_EQ(hb[i * 32 + j], static_cast<float>(kR1Signs[i] * h[i * 32 + j] / std::sqrt(32.0)));
  EXPECT_LT(orthogonality_error(d, 32), 1e-6);
}

TEST(R1, IsBlockDiagonalHbS1WithTheFirst64ChannelsIdentity) {
  const std::int64_t n = 256;
  const BlockRotation r1 = make_r1(n);
  const Dense d = to_dense(r1.dense(n));
  const std::vector<float> hb = signed_hadamard_block(kR1Signs);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double want = 0.0;
      if (i < 64) {
        want = i == j ? 1.0 : 0.0;
      } else if (i / 32 == j / 32) {
        want = hb[(i % 32) * 32 + j % 32];
      }
      ASSERT_EQ(d[i * n + j], want) << i << "," << j;
    }
  }
  EXPECT_LT(orthogonality_error(d, n), 1e-6);
}

TEST(R1, RejectsHiddenSizesThatAreNotMultiplesOf32OrBelow64) {
  for (std::int64_t h : {0, 32, 48, 100, 4100}) EXPECT_THROW(make_r1(h), Error) << h;
  EXPECT_NO_THROW(make_r1(64));
  EXPECT_NO_THROW(make_r1(4096));
}

// R2 as §5.2 writes it: B = block_diag(Hb(s2) × n/32), P = torch.cat((I[:, -16:], I[:, :-16]), dim=1), R2 = B·P·B.
Dense naive_r2(std::int64_t n) {
  const std::vector<float> hb = signed_hadamard_block(kR2Signs);
  Dense b(static_cast<std::size_t>(n * n), 0.0), eye(static_cast<std::size_t>(n * n), 0.0), p(eye.size());
  for (std::int64_t blk = 0; blk < n / 32; ++blk)
    for (std::int64_t i = 0; i < 32; ++i)
      for (std::int64_t j = 0; j < 32; ++j) b[(blk * 32 + i) * n + blk * 32 + j] = hb[i * 32 + j];
  for (std::int64_t i = 0; i < n; ++i) eye[i * n + i] = 1.0;
  // Columns of P: first the last 16 columns of I, then the first n − 16.
  for (std::int64_t col = 0; col < n; ++col) {
    const std::int64_t src = col < 16 ? n - 16 + col : col - 16;
    for (std::int64_t row = 0; row < n; ++row) p[row * n + col] = eye[row * n + src];
  }
  // P is the torch.roll(+16) of a row vector: (x·P)[j] = x[j − 16], element i moves to i + 16.
  Dense x(static_cast<std::size_t>(n)), xp(static_cast<std::size_t>(n), 0.0);
  for (std::int64_t i = 0; i < n; ++i) x[i] = static_cast<double>(i);
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t i = 0; i < n; ++i) xp[j] += x[i] * p[i * n + j];
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(xp[(i + 16) % n], x[i]);
  return matmul(matmul(b, p, n), b, n);
}

TEST(R2, EqualsTheNaiveBPBConstructionAndIsOrthogonal) {
  for (std::int64_t n : {128, 64, 32}) {  // 128: every Qwen3; 64: the bundled tiny models
    const BlockRotation r2 = make_r2(n);
    ASSERT_EQ(r2.block, n);
    EXPECT_TRUE(r2.identity_blocks.empty());
    const Dense want = naive_r2(n);
    const Dense got = to_dense(r2.dense(n));
    for (std::size_t e = 0; e < got.size(); ++e) ASSERT_EQ(got[e], static_cast<float>(want[e])) << n << " " << e;
    EXPECT_LT(orthogonality_error(got, n), 1e-6) << n;
  }
}

TEST(R2, RejectsHeadDimsThatAreNotMultiplesOf32) {
  for (std::int64_t d : {0, 16, 48, 80, 100}) EXPECT_THROW(make_r2(d), Error) << d;
}

}  // namespace
}  // namespace moeslim::quant
