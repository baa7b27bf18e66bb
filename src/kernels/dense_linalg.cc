#include "kernels/dense_linalg.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernels/dnnl_matmul.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

using dt = dnnl::memory::data_type;

// Block sizes of the factorisations: 128 columns per GEMM step on large matrices (K = 128 keeps oneDNN near its
// peak, measured ~180 GFLOP/s against ~90 at K = 64), 32 inside those blocks, and unblocked scalar loops below
// 32 (a 32×32 factorisation is ~5k multiply-adds, less than a GEMM call costs).
constexpr std::int64_t kOuterBlock = 128;
constexpr std::int64_t kInnerBlock = 32;
constexpr std::int64_t kUnblocked = 32;
// Input rows per Gram GEMM (K): large enough for GEMM speed, small enough that oneDNN never splits K; a chunk's
// K is rounded up to a multiple of kGramGranule (zero rows add exact zeros), so a column count meets at most 8 K.
constexpr std::int64_t kGramRows = 512;
constexpr std::int64_t kGramGranule = 64;
// Rows per GEMM along the diagonal of a lower-triangle product: what is computed above the diagonal is at most
// half a strip per row.
constexpr std::int64_t kDiagonalStrip = 128;

std::int64_t block_for(std::int64_t n) { return n > 2 * kOuterBlock ? kOuterBlock : kInnerBlock; }

// Scratch buffers of the blocked routines, kept per thread and per recursion level so that repeated calls do not
// allocate: a fresh 1 MB buffer costs ~250 page faults, measured at ~7 % of a 2048 factorisation. The algorithms
// write every element they read.
thread_local std::vector<std::array<std::vector<float>, 3>> t_scratch;
thread_local std::size_t t_scratch_depth = 0;

class ScratchFrame {
 public:
  ScratchFrame() : depth_(t_scratch_depth++) {
    if (t_scratch.size() <= depth_) t_scratch.resize(depth_ + 1);
  }
  ~ScratchFrame() { --t_scratch_depth; }
  ScratchFrame(const ScratchFrame&) = delete;
  ScratchFrame& operator=(const ScratchFrame&) = delete;

  float* get(std::size_t slot, std::int64_t elements) {
    std::vector<float>& buffer = t_scratch[depth_][slot];
    if (buffer.size() < static_cast<std::size_t>(elements)) buffer.resize(static_cast<std::size_t>(elements));
    return buffer.data();
  }

 private:
  std::size_t depth_;
};

dnnl::memory::desc view_desc(std::int64_t rows, std::int64_t cols, std::int64_t row_stride, std::int64_t col_stride,
                             dt type = dt::f32) {
  return dnnl::memory::desc({rows, cols}, type, dnnl::memory::dims{row_stride, col_stride});
}

// One oneDNN call: C[m, n] (row stride ldc) = or += A[m, k]·B[k, n]; A and B hold `type` elements (f32, or bf16
// with f32 accumulation), their views' strides counted in elements of it.
void matmul_tile(const ConstMatrixView& a, const ConstMatrixView& b, float* c, std::int64_t ldc, bool accumulate,
                 dt type = dt::f32) {
  const detail::MatmulProblem problem{view_desc(a.rows, a.cols, a.row_stride, a.col_stride, type),
                                      view_desc(b.rows, b.cols, b.row_stride, b.col_stride, type),
                                      detail::row_major_desc(a.rows, b.cols, ldc, dt::f32), accumulate};
  detail::run_matmul(problem, a.data, b.data, c);
}

// The lower triangle of a [n, n] copied into a dense [n, n] buffer with zeros above the diagonal, so that a GEMM
// can read it whole.
void copy_lower(const float* a, std::int64_t n, std::int64_t lda, float* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::memcpy(out + i * n, a + i * lda, sizeof(float) * static_cast<std::size_t>(i + 1));
    std::fill(out + i * n + i + 1, out + (i + 1) * n, 0.0f);
  }
}

// ---- unblocked kernels for the small diagonal blocks ----

// Row by row: L[i][j] = (A[i][j] − Σ_{k<j} L[i][k]·L[j][k]) / L[j][j], L[j][j] = √(A[j][j] − Σ_{k<j} L[j][k]²).
std::optional<CholeskyPivot> cholesky_unblocked(float* a, std::int64_t n, std::int64_t lda, std::int64_t offset) {
  for (std::int64_t j = 0; j < n; ++j) {
    float* rj = a + j * lda;
    float d = rj[j];
    for (std::int64_t k = 0; k < j; ++k) d -= rj[k] * rj[k];
    if (!(d > 0.0f) || !std::isfinite(d)) return CholeskyPivot{offset + j, d};
    const float l = std::sqrt(d);
    rj[j] = l;
    for (std::int64_t i = j + 1; i < n; ++i) {
      float* ri = a + i * lda;
      float s = ri[j];
      for (std::int64_t k = 0; k < j; ++k) s -= ri[k] * rj[k];
      ri[j] = s / l;
    }
  }
  return std::nullopt;
}

// Row by row in place: X[i][j] = −(Σ_{j≤k<i} L[i][k]·X[k][j]) / L[i][i] for j < i (ascending j, so L[i][j] is
// read before X[i][j] replaces it), then X[i][i] = 1 / L[i][i].
void invert_lower_unblocked(float* a, std::int64_t n, std::int64_t lda) {
  for (std::int64_t i = 0; i < n; ++i) {
    float* ri = a + i * lda;
    const float d = ri[i];
    for (std::int64_t j = 0; j < i; ++j) {
      float s = 0.0f;
      for (std::int64_t k = j; k < i; ++k) s += ri[k] * a[k * lda + j];
      ri[j] = -s / d;
    }
    ri[i] = 1.0f / d;
  }
}

// ---- blocked ----

std::optional<CholeskyPivot> cholesky_blocked(float* a, std::int64_t n, std::int64_t lda, std::int64_t offset);

void invert_lower_blocked(float* a, std::int64_t n, std::int64_t lda) {
  if (n <= kUnblocked) {
    invert_lower_unblocked(a, n, lda);
    return;
  }
  const std::int64_t nb = block_for(n);
  ScratchFrame frame;
  float* diag = frame.get(0, nb * nb);   // the diagonal block's inverse, zeros above its diagonal
  float* rows = frame.get(1, nb * n);    // the row block's R[J, 0:j0] before it is multiplied
  float* panel = frame.get(2, n * nb);   // −L[j1:, J]
  for (std::int64_t j0 = 0; j0 < n; j0 += nb) {
    const std::int64_t b = std::min(nb, n - j0), j1 = j0 + b, m = n - j1;
    float* ajj = a + j0 * lda + j0;
    copy_lower(ajj, b, lda, diag);
    invert_lower_blocked(diag, b, b);
    const ConstMatrixView xjj = row_major(diag, b, b, b);
    // X[J, 0:j0] = X_JJ · R[J, 0:j0] (R: I minus the updates of the row blocks above, already applied).
    if (j0 > 0) {
      for (std::int64_t i = 0; i < b; ++i) std::memcpy(rows + i * j0, a + (j0 + i) * lda, sizeof(float) * j0);
      matmul(xjj, row_major(rows, b, j0, j0), a + j0 * lda, lda, false);
    }
    for (std::int64_t i = 0; i < b; ++i) std::memcpy(ajj + i * lda, diag + i * b, sizeof(float) * (i + 1));
    if (m == 0) break;
    // The rows below: R[j1:, 0:j1] −= L[j1:, J]·X[J, 0:j1]. Columns of block J are written for the first time
    // (R starts as 0 there), over the L values they held: those are saved, negated, first.
    for (std::int64_t i = 0; i < m; ++i) {
      const float* src = a + (j1 + i) * lda + j0;
      float* dst = panel + i * b;
      for (std::int64_t k = 0; k < b; ++k) dst[k] = -src[k];
    }
    const ConstMatrixView p = row_major(panel, m, b, b);
    if (j0 > 0) matmul(p, row_major(a + j0 * lda, b, j0, lda), a + j1 * lda, lda, true);
    matmul(p, xjj, a + j1 * lda + j0, lda, false);
  }
}

std::optional<CholeskyPivot> cholesky_blocked(float* a, std::int64_t n, std::int64_t lda, std::int64_t offset) {
  if (n <= kUnblocked) return cholesky_unblocked(a, n, lda, offset);
  const std::int64_t nb = block_for(n);
  ScratchFrame frame;
  float* diag_inverse = frame.get(0, nb * nb);
  float* panel = frame.get(1, n * nb);
  for (std::int64_t k0 = 0; k0 < n; k0 += nb) {
    const std::int64_t b = std::min(nb, n - k0), k1 = k0 + b, m = n - k1;
    float* akk = a + k0 * lda + k0;
    if (auto failed = cholesky_blocked(akk, b, lda, offset + k0)) return failed;
    if (m == 0) break;
    // Panel: L21 = A21 · L11⁻ᵀ (A21 copied out first: the GEMM writes where it reads).
    copy_lower(akk, b, lda, diag_inverse);
    invert_lower_blocked(diag_inverse, b, b);
    float* a21 = a + k1 * lda + k0;
    for (std::int64_t i = 0; i < m; ++i) std::memcpy(panel + i * b, a21 + i * lda, sizeof(float) * b);
    matmul(row_major(panel, m, b, b), row_major(diag_inverse, b, b, b).transposed(), a21, lda, false);
    // Trailing lower triangle: A22 −= L21·L21ᵀ, as A22 += L21·(−L21)ᵀ.
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t k = 0; k < b; ++k) panel[i * b + k] = -a21[i * lda + k];
    }
    matmul(row_major(a21, m, b, lda), row_major(panel, m, b, b).transposed(), a + k1 * lda + k1, lda, true,
           MatmulPart::kLowerTriangle);
  }
  return std::nullopt;
}

// ---- rank-one update, compiled twice (portable, AVX-512) from one body; -ffp-contract=off keeps both a
// multiply then an add ----

[[gnu::always_inline]] inline void outer_product_body(float* c, std::int64_t rows, std::int64_t cols,
                                                      std::int64_t ldc, const float* x, const float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    const float f = x[r];
    for (std::int64_t j = 0; j < cols; ++j) cr[j] += f * y[j];
  }
}

MOESLIM_AVX512 void outer_product_avx512(float* c, std::int64_t rows, std::int64_t cols, std::int64_t ldc,
                                         const float* x, const float* y) {
  outer_product_body(c, rows, cols, ldc, x, y);
}

void outer_product_portable(float* c, std::int64_t rows, std::int64_t cols, std::int64_t ldc, const float* x,
                            const float* y) {
  outer_product_body(c, rows, cols, ldc, x, y);
}

[[noreturn]] void bad_shapes(const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "dense linear algebra: " + what);
}

}  // namespace

namespace {

// ConstMatrixView::block for a view whose data are elements of `type` (a bf16 view's offsets are in 2-byte
// elements, not floats).
ConstMatrixView block(const ConstMatrixView& v, std::int64_t r0, std::int64_t c0, std::int64_t r, std::int64_t c,
                      dt type) {
  if (type == dt::f32) return v.block(r0, c0, r, c);
  const auto* base = reinterpret_cast<const std::uint16_t*>(v.data) + r0 * v.row_stride + c0 * v.col_stride;
  return {reinterpret_cast<const float*>(base), r, c, v.row_stride, v.col_stride};
}

// matmul() on operands of `type` (views of f32 pointers whose strides count elements of `type`).
void matmul_typed(ConstMatrixView a, ConstMatrixView b, float* c, std::int64_t ldc, bool accumulate, MatmulPart part,
                  dt type) {
  const std::int64_t m = a.rows, k = a.cols, n = b.cols;
  if (b.rows != k || m < 0 || n < 0 || k < 0 || ldc < n ||
      (part == MatmulPart::kLowerTriangle && m != n)) {
    bad_shapes("cannot multiply [" + std::to_string(m) + ", " + std::to_string(k) + "] by [" +
               std::to_string(b.rows) + ", " + std::to_string(n) + "] into a C of row stride " + std::to_string(ldc));
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    }
    return;
  }
  const bool lower = part == MatmulPart::kLowerTriangle;
  for (std::int64_t i0 = 0; i0 < m; i0 += kMatmulTile) {
    const std::int64_t mt = std::min(kMatmulTile, m - i0);
    // Lower triangle: whole tiles left of the diagonal block, and the diagonal block in strips of rows, each up
    // to its own last row (a whole 512 tile there would compute half of it for nothing).
    const std::int64_t n_full = lower ? i0 : n;
    for (std::int64_t j0 = 0; j0 < n_full; j0 += kMatmulTile) {
      const std::int64_t nt = std::min(kMatmulTile, n_full - j0);
      matmul_tile(block(a, i0, 0, mt, k, type), block(b, 0, j0, k, nt, type), c + i0 * ldc + j0, ldc, accumulate,
                  type);
    }
    if (!lower) continue;
    for (std::int64_t s0 = i0; s0 < i0 + mt; s0 += kDiagonalStrip) {
      const std::int64_t sm = std::min(kDiagonalStrip, i0 + mt - s0);
      matmul_tile(block(a, s0, 0, sm, k, type), block(b, 0, i0, k, s0 + sm - i0, type), c + s0 * ldc + i0, ldc,
                  accumulate, type);
    }
  }
}

}  // namespace

void matmul(ConstMatrixView a, ConstMatrixView b, float* c, std::int64_t ldc, bool accumulate, MatmulPart part) {
  matmul_typed(a, b, c, ldc, accumulate, part, dt::f32);
}

void gram_matrix(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx, float* h, std::int64_t ldh,
                 bool accumulate, GemmPrecision precision) {
  if (rows < 0 || cols < 1 || ldx < cols || ldh < cols) {
    bad_shapes("bad Gram matrix of " + std::to_string(rows) + " rows of " + std::to_string(cols) +
               " columns (row strides " + std::to_string(ldx) + ", " + std::to_string(ldh) + ")");
  }
  if (rows == 0 && !accumulate) {
    for (std::int64_t i = 0; i < cols; ++i) std::fill(h + i * ldh, h + i * ldh + i + 1, 0.0f);
    return;
  }
  // Chunks of kGramRows rows; a chunk that is not a multiple of kGramGranule rows is copied with zero rows up to
  // the next one (one GEMM of K = 512 beats a GEMM of 448 and one of 64: each pass reads and writes all of H).
  // At bf16 the chunk is rounded to bf16 as it is copied (the GEMM accumulates in f32).
  const bool bf16 = precision == GemmPrecision::kBF16;
  thread_local std::vector<float> padded;
  thread_local std::vector<std::uint16_t> rounded;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kGramRows) {
    const std::int64_t count = std::min(kGramRows, rows - r0);
    const std::int64_t k = (count + kGramGranule - 1) / kGramGranule * kGramGranule;
    const float* xb = x + r0 * ldx;
    std::int64_t ld = ldx;
    if (bf16) {
      if (rounded.size() < static_cast<std::size_t>(k * cols)) rounded.resize(static_cast<std::size_t>(k * cols));
      f32_to_bf16_rows(xb, count, cols, ldx, rounded.data(), cols);
      std::fill(rounded.data() + count * cols, rounded.data() + k * cols, std::uint16_t{0});
      const ConstMatrixView xv = row_major(reinterpret_cast<const float*>(rounded.data()), k, cols, cols);
      matmul_typed(xv.transposed(), xv, h, ldh, accumulate || r0 > 0, MatmulPart::kLowerTriangle, dt::bf16);
      continue;
    }
    if (k != count) {
      if (padded.size() < static_cast<std::size_t>(k * cols)) padded.resize(static_cast<std::size_t>(k * cols));
      for (std::int64_t r = 0; r < count; ++r) {
        std::memcpy(padded.data() + r * cols, xb + r * ldx, sizeof(float) * static_cast<std::size_t>(cols));
      }
      std::fill(padded.data() + count * cols, padded.data() + k * cols, 0.0f);
      xb = padded.data();
      ld = cols;
    }
    const ConstMatrixView xv = row_major(xb, k, cols, ld);
    matmul(xv.transposed(), xv, h, ldh, accumulate || r0 > 0, MatmulPart::kLowerTriangle);
  }
}

std::optional<CholeskyPivot> try_cholesky_lower(float* a, std::int64_t n, std::int64_t lda) {
  if (n < 1 || lda < n) {
    bad_shapes("Cholesky of " + std::to_string(n) + " columns with row stride " + std::to_string(lda));
  }
  return cholesky_blocked(a, n, lda, 0);
}

void cholesky_lower(float* a, std::int64_t n, std::int64_t lda) {
  if (const auto failed = try_cholesky_lower(a, n, lda)) {
    throw Error(ErrorCode::kInvalidArgument, "the matrix is not positive definite: Cholesky pivot " +
                                                 std::to_string(failed->value) + " at index " +
                                                 std::to_string(failed->index) + " of " + std::to_string(n));
  }
}

void invert_lower_triangular(float* a, std::int64_t n, std::int64_t lda) {
  if (n < 1 || lda < n) {
    bad_shapes("triangular inverse of " + std::to_string(n) + " columns with row stride " + std::to_string(lda));
  }
  invert_lower_blocked(a, n, lda);
}

void add_outer_product(float* c, std::int64_t rows, std::int64_t cols, std::int64_t ldc, const float* x,
                       const float* y) {
  if (active_kernel_isa() == KernelIsa::kAvx512) {
    outer_product_avx512(c, rows, cols, ldc, x, y);
  } else {
    outer_product_portable(c, rows, cols, ldc, x, y);
  }
}

}  // namespace moeslim::kernels
