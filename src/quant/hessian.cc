// The heavy lifting is kernels/dense_linalg.h (the Gram matrix, the blocked Cholesky and triangular inverse);
// what is here are O(n²) passes: the reversal J·H·J with the equilibration, and the reversal back with E (and,
// for F, the transposition).
#include "quant/hessian.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/dense_linalg.h"

namespace moeslim::quant {
namespace {

// Square tiles of the mirroring and transposing passes (a 16 KB copy on the stack).
constexpr std::int64_t kMirrorTile = 64;

std::size_t at(std::int64_t i, std::int64_t j, std::int64_t n) { return static_cast<std::size_t>(i * n + j); }

[[noreturn]] void not_positive_definite(const std::string& what, float value, std::int64_t column, std::int64_t n) {
  throw Error(ErrorCode::kInvalidArgument, "the Hessian is not positive definite: " + what + " " +
                                               std::to_string(value) + " at column " + std::to_string(column) +
                                               " of " + std::to_string(n));
}

void check_size(std::size_t size, std::int64_t n) {
  if (n < 1 || size != static_cast<std::size_t>(n * n)) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian of " + std::to_string(n) + " columns needs " +
                                                 std::to_string(n) + "² values, got " + std::to_string(size));
  }
}

// E_i = √H_ii for the diagonal d, after checking that it is positive and finite.
std::vector<float> diagonal_roots(const float* d, std::int64_t stride, std::int64_t n) {
  std::vector<float> e(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = d[i * stride];
    if (!(v > 0.0f) || !std::isfinite(v)) not_positive_definite("diagonal element", v, i, n);
    e[static_cast<std::size_t>(i)] = static_cast<float>(std::sqrt(static_cast<double>(v)));
  }
  return e;
}

// The lower triangle of J·S·J (S = E⁻¹·H·E⁻¹, unit diagonal set exactly) into `out`, from the upper triangle of
// h above its diagonal: element (p, q) of J·S·J is S(n−1−p, n−1−q), so row p reads row n−1−p of h backwards.
// `out` may be h itself: the pass writes below the diagonal and on it, and reads only above it.
void reverse_and_equilibrate(const float* h, const std::vector<float>& e, std::int64_t n, float* out) {
  std::vector<float> inv_e(e.size());
  for (std::size_t i = 0; i < e.size(); ++i) inv_e[i] = 1.0f / e[i];
  for (std::int64_t p = 0; p < n; ++p) {
    const std::int64_t a = n - 1 - p;
    const float* src = h + a * n + (n - 1);          // src[-q] = H(a, n−1−q)
    const float* inv = inv_e.data() + (n - 1);       // inv[-q] = E⁻¹ of column n−1−q
    const float fa = inv_e[static_cast<std::size_t>(a)];
    float* row = out + p * n;
    for (std::int64_t q = 0; q < p; ++q) row[q] = src[-q] * fa * inv[-q];
    row[p] = 1.0f;
  }
}

// In place: the lower Cholesky factor L of J·S·J (reverse_and_equilibrate's output); a failed pivot k is
// column n − 1 − k of H.
void factor(LargeVector<float>& a, std::int64_t n) {
  if (const auto failed = kernels::try_cholesky_lower(a.data(), n, n)) {
    not_positive_definite("Cholesky pivot (of H scaled to a unit diagonal)", failed->value, n - 1 - failed->index,
                          n);
  }
}

// h = f·sum in both triangles, from the lower triangle of sum; h may be sum. Tile by tile of the lower
// triangle: each value is written in place and, through a dense transposed copy of the tile, to its mirror row
// by row (writing (j, i) directly would touch 64 rows n floats apart, which for n a power of two share their
// cache sets). Nothing above the diagonal is read.
void scale_and_mirror(const float* sum, std::int64_t n, float f, float* h) {
  float tile[kMirrorTile * kMirrorTile];  // tile[j][i]
  for (std::int64_t i0 = 0; i0 < n; i0 += kMirrorTile) {
    const std::int64_t ti = std::min(kMirrorTile, n - i0);
    for (std::int64_t j0 = 0; j0 <= i0; j0 += kMirrorTile) {
      const std::int64_t tj = std::min(kMirrorTile, n - j0);
      for (std::int64_t i = 0; i < ti; ++i) {
        const float* src = sum + at(i0 + i, j0, n);
        float* dst = h + at(i0 + i, j0, n);
        const std::int64_t end = std::min(tj, i0 + i - j0 + 1);  // j ≤ i
        for (std::int64_t j = 0; j < end; ++j) dst[j] = tile[j * kMirrorTile + i] = f * src[j];
      }
      for (std::int64_t j = 0; j < tj; ++j) {
        float* dst = h + at(j0 + j, i0, n);
        for (std::int64_t i = std::max<std::int64_t>(0, j0 + j + 1 - i0); i < ti; ++i) {
          dst[i] = tile[j * kMirrorTile + i];
        }
      }
    }
  }
}

}  // namespace

HessianAccumulator::HessianAccumulator(std::int64_t columns, kernels::GemmPrecision precision)
    : columns_(columns), precision_(precision) {
  if (columns < 1) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian needs at least one column, got " + std::to_string(columns));
  }
  sum_.assign(static_cast<std::size_t>(columns * columns), 0.0f);
}

void HessianAccumulator::add(const float* x, std::int64_t rows, std::int64_t columns) {
  if (columns != columns_ || rows < 0) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian of " + std::to_string(columns_) + " columns cannot add " +
                                                 std::to_string(rows) + " rows of " + std::to_string(columns));
  }
  if (sum_.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "this Hessian accumulator's sums were taken (std::move(acc).hessian())");
  }
  if (rows == 0) return;
  kernels::gram_matrix(x, rows, columns, columns, sum_.data(), columns, /*accumulate=*/true, precision_);
  rows_ += rows;
}

LargeVector<float> HessianAccumulator::hessian() const& {
  if (rows_ == 0) throw Error(ErrorCode::kInvalidArgument, "Hessian has no input rows yet");
  LargeVector<float> h(sum_.size());
  scale_and_mirror(sum_.data(), columns_, static_cast<float>(2.0 / static_cast<double>(rows_)), h.data());
  return h;
}

LargeVector<float> HessianAccumulator::hessian() && {
  if (rows_ == 0) throw Error(ErrorCode::kInvalidArgument, "Hessian has no input rows yet");
  scale_and_mirror(sum_.data(), columns_, static_cast<float>(2.0 / static_cast<double>(rows_)), sum_.data());
  rows_ = 0;
  return std::move(sum_);
}

LargeVector<float> inverse_cholesky_upper(LargeVector<float> h, std::int64_t n) {
  check_size(h.size(), n);
  const std::vector<float> e = diagonal_roots(h.data(), n + 1, n);
  reverse_and_equilibrate(h.data(), e, n, h.data());
  factor(h, n);
  kernels::invert_lower_triangular(h.data(), n, n);
  // U_S = J·L⁻¹·J is the flat reversal of L⁻¹ (upper; below the diagonal it holds the unused upper half, set to
  // 0), then U = U_S·E⁻¹: column j divided by E_j.
  std::reverse(h.begin(), h.end());
  for (std::int64_t i = 0; i < n; ++i) {
    float* row = h.data() + i * n;
    std::fill(row, row + i, 0.0f);
    for (std::int64_t j = i; j < n; ++j) row[j] /= e[static_cast<std::size_t>(j)];
  }
  return h;
}

LargeVector<float> unit_lower_factor(std::span<const float> h, std::int64_t n, std::span<const float> diagonal) {
  check_size(h.size(), n);
  if (!diagonal.empty() && diagonal.size() != static_cast<std::size_t>(n)) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian of " + std::to_string(n) + " columns cannot take a diagonal of " +
                                                 std::to_string(diagonal.size()) + " values");
  }
  const std::vector<float> e =
      diagonal.empty() ? diagonal_roots(h.data(), n + 1, n) : diagonal_roots(diagonal.data(), 1, n);
  LargeVector<float> a(h.size());
  reverse_and_equilibrate(h.data(), e, n, a.data());
  factor(a, n);
  // The flat reversal puts R_S = J·L·J in the upper triangle; F[j][i] = R_S[i][j]·E_i·c_j with
  // c_j = 1 / (E_j·R_S[j][j]) is its scaled transpose, written tile by tile below the diagonal through a dense
  // copy of the tile (a column of a tile is a row of the other), the upper triangle then zeroed.
  std::reverse(a.begin(), a.end());
  std::vector<float> c(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) {
    c[static_cast<std::size_t>(j)] = static_cast<float>(
        1.0 / (static_cast<double>(e[static_cast<std::size_t>(j)]) * static_cast<double>(a[at(j, j, n)])));
  }
  float tile[kMirrorTile * kMirrorTile];  // tile[j][i]
  for (std::int64_t i0 = 0; i0 < n; i0 += kMirrorTile) {
    const std::int64_t ti = std::min(kMirrorTile, n - i0);
    for (std::int64_t j0 = i0; j0 < n; j0 += kMirrorTile) {
      const std::int64_t tj = std::min(kMirrorTile, n - j0);
      for (std::int64_t i = 0; i < ti; ++i) {  // the upper part of rows i0 + i: columns j0 + j > i0 + i
        float* row = a.data() + at(i0 + i, j0, n);
        const float ei = e[static_cast<std::size_t>(i0 + i)];
        for (std::int64_t j = std::max<std::int64_t>(0, i0 + i + 1 - j0); j < tj; ++j) {
          tile[j * kMirrorTile + i] = row[j] * ei * c[static_cast<std::size_t>(j0 + j)];
          row[j] = 0.0f;
        }
      }
      for (std::int64_t j = 0; j < tj; ++j) {
        float* row = a.data() + at(j0 + j, i0, n);
        for (std::int64_t i = 0; i < std::min(ti, j0 + j - i0); ++i) row[i] = tile[j * kMirrorTile + i];
      }
    }
  }
  for (std::int64_t i = 0; i < n; ++i) a[at(i, i, n)] = 1.0f;
  return a;
}

}  // namespace moeslim::quant
