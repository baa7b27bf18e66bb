// One kernel does the heavy lifting of both the accumulator and the Cholesky factorisation: the Gram update
// G ± XᵀX of a block of rows, over the upper triangle, by 4×4 register tiles. Plain C++ (the build targets
// baseline x86-64; the compiler vectorises the tile), parallel over tile rows, each element summed by one thread
// in row order.
#include "quant/hessian.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/threading.h"

namespace moeslim::quant {
namespace {

constexpr std::int64_t kTile = 4;             // a 4×4 tile of doubles: 8 SSE registers, room for the operands
constexpr std::int64_t kChunkRows = 64;       // input rows packed per Gram update: both panels of a tile fit L1
constexpr std::int64_t kCholeskyBlock = 64;   // rows factored between two Gram updates of the trailing matrix
constexpr std::int64_t kInverseStrip = 64;    // columns of R⁻¹ one task computes
// Multiply-adds below which a loop runs on one thread (starting the team would cost more than it saves).
constexpr std::int64_t kParallelWork = std::int64_t{1} << 20;

// `rows` rows of `cols` values (row stride ld) as panels of kTile columns: panel p holds columns
// [p·kTile, (p+1)·kTile) of each row in turn, zero past the last column, so the rows of a tile are contiguous.
template <typename T>
void pack_panels(const T* x, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::vector<double>& panels) {
  const std::int64_t np = (cols + kTile - 1) / kTile;
  panels.assign(static_cast<std::size_t>(np * rows * kTile), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      panels[static_cast<std::size_t>((c / kTile * rows + r) * kTile + c % kTile)] = static_cast<double>(x[r * ld + c]);
    }
  }
}

// g[i][j] ±= Σ_r x[r][i]·x[r][j] for the tiles on or above the diagonal of the [cols, cols] matrix g (row stride
// ldg), x given as pack_panels' panels. Each element is summed over r in order (product, then add or subtract).
template <bool kSubtract>
void gram_update(const std::vector<double>& panels, std::int64_t rows, std::int64_t cols, double* g,
                 std::int64_t ldg) {
  const std::int64_t np = (cols + kTile - 1) / kTile;
#pragma omp parallel for num_threads(kernels::num_threads()) schedule(dynamic, 1) \
    if (rows * cols * cols / 2 >= kParallelWork)
  for (std::int64_t ip = 0; ip < np; ++ip) {
    const double* xi = panels.data() + ip * rows * kTile;
    const std::int64_t ni = std::min(kTile, cols - ip * kTile);
    for (std::int64_t jp = ip; jp < np; ++jp) {
      const double* xj = panels.data() + jp * rows * kTile;
      const std::int64_t nj = std::min(kTile, cols - jp * kTile);
      double* tile = g + ip * kTile * ldg + jp * kTile;
      double acc[kTile][kTile] = {};
      for (std::int64_t a = 0; a < ni; ++a) {
        for (std::int64_t b = 0; b < nj; ++b) acc[a][b] = tile[a * ldg + b];
      }
      for (std::int64_t r = 0; r < rows; ++r) {
        const double* u = xi + r * kTile;
        const double* v = xj + r * kTile;
        for (std::int64_t a = 0; a < kTile; ++a) {
          for (std::int64_t b = 0; b < kTile; ++b) {
            if constexpr (kSubtract) {
              acc[a][b] -= u[a] * v[b];
            } else {
              acc[a][b] += u[a] * v[b];
            }
          }
        }
      }
      for (std::int64_t a = 0; a < ni; ++a) {
        for (std::int64_t b = 0; b < nj; ++b) tile[a * ldg + b] = acc[a][b];
      }
    }
  }
}

// In place: the upper triangle of a [n, n] becomes R with A = RᵀR (right-looking, kCholeskyBlock rows at a
// time: the block's rows are factored and solved one by one, then the trailing matrix takes their Gram update).
// a is the caller's H in reversed index order, so the message names column n − 1 − k.
void cholesky_upper(std::vector<double>& a, std::int64_t n) {
  std::vector<double> panels;
  for (std::int64_t k0 = 0; k0 < n; k0 += kCholeskyBlock) {
    const std::int64_t k1 = std::min(k0 + kCholeskyBlock, n);
    for (std::int64_t k = k0; k < k1; ++k) {
      double* rk = a.data() + k * n;
      if (!(rk[k] > 0.0) || !std::isfinite(rk[k])) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the Hessian is not positive definite: Cholesky pivot " + std::to_string(rk[k]) +
                        " at column " + std::to_string(n - 1 - k) + " of " + std::to_string(n));
      }
      const double r = std::sqrt(rk[k]);
      rk[k] = r;
      for (std::int64_t j = k + 1; j < n; ++j) rk[j] /= r;
      for (std::int64_t i = k + 1; i < k1; ++i) {
        double* ri = a.data() + i * n;
        const double f = rk[i];
        for (std::int64_t j = i; j < n; ++j) ri[j] -= f * rk[j];
      }
    }
    if (k1 < n) {
      pack_panels(a.data() + k0 * n + k1, k1 - k0, n - k1, n, panels);
      gram_update<true>(panels, k1 - k0, n - k1, a.data() + k1 * n + k1, n);
    }
  }
}

// X = R⁻¹ (upper) by back substitution. Column j of X depends on column j alone, so strips of columns are
// independent tasks; within one, X[i][j] = (δ_ij − Σ_{k>i} R[i][k]·X[k][j]) / R[i][i], the sum in ascending k.
// A strip is built in a dense buffer: X's own rows are 8·n bytes apart, which for n a power of two puts every
// row of the strip in the same cache sets.
std::vector<double> invert_upper(const std::vector<double>& r, std::int64_t n) {
  std::vector<double> x(static_cast<std::size_t>(n * n), 0.0);
  const std::int64_t strips = (n + kInverseStrip - 1) / kInverseStrip;
#pragma omp parallel num_threads(kernels::num_threads()) if (n * n * n / 6 >= kParallelWork)
  {
    std::vector<double> strip;  // row k of the strip at k·kInverseStrip
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t s = 0; s < strips; ++s) {
      const std::int64_t j0 = s * kInverseStrip, j1 = std::min(j0 + kInverseStrip, n);
      strip.resize(static_cast<std::size_t>(j1 * kInverseStrip));
      for (std::int64_t i = j1 - 1; i >= 0; --i) {
        const double* ri = r.data() + i * n;
        double* t = strip.data() + i * kInverseStrip - j0;  // t[j], j in [max(i, j0), j1)
        const std::int64_t jb = std::max(i, j0);
        for (std::int64_t j = jb; j < j1; ++j) t[j] = j == i ? 1.0 : 0.0;
        for (std::int64_t k = i + 1; k < j1; ++k) {
          const double f = ri[k];
          const double* xk = strip.data() + k * kInverseStrip - j0;
          for (std::int64_t j = std::max(k, j0); j < j1; ++j) t[j] -= f * xk[j];
        }
        for (std::int64_t j = jb; j < j1; ++j) t[j] /= ri[i];
        std::copy(t + jb, t + j1, x.data() + i * n + jb);
      }
    }
  }
  return x;
}

}  // namespace

HessianAccumulator::HessianAccumulator(std::int64_t columns) : columns_(columns) {
  if (columns < 1) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian needs at least one column, got " + std::to_string(columns));
  }
  sum_.assign(static_cast<std::size_t>(columns * columns), 0.0);
}

void HessianAccumulator::add(const float* x, std::int64_t rows, std::int64_t columns) {
  if (columns != columns_ || rows < 0) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian of " + std::to_string(columns_) + " columns cannot add " +
                                                 std::to_string(rows) + " rows of " + std::to_string(columns));
  }
  std::vector<double> panels;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kChunkRows) {
    const std::int64_t n = std::min(kChunkRows, rows - r0);
    pack_panels(x + r0 * columns, n, columns, columns, panels);
    gram_update<false>(panels, n, columns, sum_.data(), columns);
  }
  rows_ += rows;
}

std::vector<double> HessianAccumulator::hessian() const {
  if (rows_ == 0) throw Error(ErrorCode::kInvalidArgument, "Hessian has no input rows yet");
  const double f = 2.0 / static_cast<double>(rows_);
  const std::int64_t n = columns_;
  std::vector<double> h(sum_.size());
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = i; j < n; ++j) {
      h[static_cast<std::size_t>(i * n + j)] = h[static_cast<std::size_t>(j * n + i)] =
          f * sum_[static_cast<std::size_t>(i * n + j)];
    }
  }
  return h;
}

std::vector<double> inverse_cholesky_upper(std::vector<double> h, std::int64_t n) {
  if (n < 1 || h.size() != static_cast<std::size_t>(n * n)) {
    throw Error(ErrorCode::kInvalidArgument, "Hessian of " + std::to_string(n) + " columns needs " +
                                                 std::to_string(n) + "² values, got " + std::to_string(h.size()));
  }
  // J·H·J: element (p, q) moves to (n−1−p, n−1−q), i.e. flat index i to n² − 1 − i.
  std::reverse(h.begin(), h.end());
  cholesky_upper(h, n);
  std::vector<double> x = invert_upper(h, n);
  h = {};
  // U = J·R⁻ᵀ·J: U[p][q] = X[n−1−q][n−1−p], a permutation of the upper triangle that is its own inverse: swap
  // the pairs off the anti-diagonal (p + q < n − 1 with their images), in place.
  for (std::int64_t p = 0; p < n; ++p) {
    for (std::int64_t q = p; p + q < n - 1; ++q) {
      std::swap(x[static_cast<std::size_t>(p * n + q)], x[static_cast<std::size_t>((n - 1 - q) * n + (n - 1 - p))]);
    }
  }
  return x;
}

}  // namespace moeslim::quant
