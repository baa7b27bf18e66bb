// Dense float32 linear algebra for GPTQ (quant/hessian.h, quant/gptq.h): the Gram matrix XᵀX, a blocked
// Cholesky factorisation, the inverse of a lower-triangular matrix, and C += A·B on strided views. The O(n³) work
// of each is oneDNN's f32 matmul (dnnl_matmul.h); what is left outside it is O(n²) or works on small blocks.
//
// Matrices are row-major unless a view says otherwise: element (r, c) of a [rows, cols] matrix with row stride
// ld is at data[r·ld + c].
//
// Thread counts: the GEMMs run with kernels::num_threads() threads (one inside kernels::run_tasks, whose tasks
// hold a SerialKernelsScope); everything else runs on the calling thread. oneDNN's f32 GEMM (gemm:jit, which
// takes these strided operands) splits a GEMM over M and N; it would split K only for a long K against a small
// M·N, summing partial results in an order that depends on the split. The GEMMs here keep K ≤ 512 and M, N up to
// 512 tiles, so every element is summed in the same order whatever the count and the results are bit-identical
// on 1 or N threads: DenseLinalgThreads checks 1 against 2 on the shapes GPTQ uses (3, 4 and 8 threads were
// checked by hand on a 2-core machine).
//
// Primitive cache: oneDNN primitives are cached per shape (dnnl_matmul.h). The GEMMs are cut into tiles of at
// most kMatmulTile rows and columns aligned to the start of the operation, and Gram rows into chunks whose K is
// a multiple of 64, so for a matrix size n a run meets a few dozen shapes, whatever the data.
#pragma once

#include <cstdint>
#include <optional>

#include "kernels/gemm.h"

namespace moeslim::kernels {

// The largest M and N of one oneDNN call: measured on Zen 4, f32 GEMMs with K = 128 run at ~180 GFLOP/s up to
// M = N = 512 and fall to ~110 for M ≥ 1024 (C no longer stays in cache between the K panels).
inline constexpr std::int64_t kMatmulTile = 512;

// A strided read-only view: element (r, c) at data[r·row_stride + c·col_stride]. A row-major matrix is
// {data, rows, cols, ld, 1}; transposed() views the same memory as its transpose, without a copy.
struct ConstMatrixView {
  const float* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t row_stride = 0;
  std::int64_t col_stride = 1;

  ConstMatrixView transposed() const { return {data, cols, rows, col_stride, row_stride}; }
  ConstMatrixView block(std::int64_t r0, std::int64_t c0, std::int64_t r, std::int64_t c) const {
    return {data + r0 * row_stride + c0 * col_stride, r, c, row_stride, col_stride};
  }
};

inline ConstMatrixView row_major(const float* data, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return {data, rows, cols, ld, 1};
}

// Which elements of C a product must produce.
enum class MatmulPart {
  kAll,
  // C is square and only its lower triangle (j ≤ i) is wanted: what lies above the diagonal is skipped but for
  // strips of 128 rows along it, computed up to each strip's last row, so elements above it may change too.
  kLowerTriangle,
};

// C = A·B, or C += A·B when `accumulate`. A [M, K] and B [K, N] are any strided views (oneDNN reads transposed
// operands in place); C [M, N] is row-major with row stride ldc (oneDNN's fast kernels need a row-major C).
// C −= A·B is C += A·(−B): callers negate the smaller operand themselves (GPTQ keeps its errors negated).
// kInvalidArgument when the shapes disagree. K = 0 sets C to 0 (or leaves it, accumulating).
void matmul(ConstMatrixView a, ConstMatrixView b, float* c, std::int64_t ldc, bool accumulate,
            MatmulPart part = MatmulPart::kAll);

// H = XᵀX, or H += XᵀX when `accumulate`, for X [rows, cols] (row stride ldx) and H [cols, cols] (row stride
// ldh): only H's lower triangle (j ≤ i) is defined afterwards; above the diagonal H holds partial sums or what
// it held before. One GEMM per chunk of 512 rows, reading X transposed in place; a chunk whose row count is not a
// multiple of 64 is copied with zero rows up to one (they add exact zeros), so K takes at most 8 values.
// At GemmPrecision::kBF16 the rows are rounded to bf16 first (products of bf16 values are exact in f32, the
// sums f32): about three times the rate, for a relative error of ~2^-8 per product (gemm.h has the measurements).
void gram_matrix(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx, float* h, std::int64_t ldh,
                 bool accumulate, GemmPrecision precision = GemmPrecision::kF32);

// A pivot that stopped a Cholesky factorisation: the index (0-based, in the matrix passed in) and the value
// under the square root, which is not positive or not finite.
struct CholeskyPivot {
  std::int64_t index = 0;
  float value = 0.0f;
};

// In place: the lower triangle of the symmetric positive definite a [n, n] (row stride lda) becomes L, lower
// with a positive diagonal, A = L·Lᵀ. Only the lower triangle is read; elements above the diagonal may be
// overwritten (they are scratch). Blocked right-looking: a block column of 128 is factored (recursively, in
// blocks of 32, then unblocked), its panel below is solved by a GEMM with the inverse of its diagonal block,
// and the trailing lower triangle takes the panel's rank-128 update as GEMM tiles.
// Returns the first pivot that is not positive and finite (a is then partly factored), or nothing on success.
std::optional<CholeskyPivot> try_cholesky_lower(float* a, std::int64_t n, std::int64_t lda);

// The same, throwing kInvalidArgument (naming the pivot's index and value) where try_cholesky_lower reports one.
void cholesky_lower(float* a, std::int64_t n, std::int64_t lda);

// In place: the lower-triangular L in a [n, n] (row stride lda, nonzero diagonal) becomes L⁻¹, also lower.
// Elements above the diagonal are neither read nor written. Blocked forward substitution of L·X = I by block
// rows of 128: the row block is multiplied by its diagonal block's inverse (computed recursively), then every
// row below takes its rank-128 update (GEMM tiles). ~n³/3 flops, as the unblocked algorithm.
void invert_lower_triangular(float* a, std::int64_t n, std::int64_t lda);

// C[r][j] += x[r] · y[j] for r < rows, j < cols: a rank-one update of the row-major C (row stride ldc). Each
// element is one multiply and one add (no fused multiply-add), on the portable and the AVX-512 path alike.
void add_outer_product(float* c, std::int64_t rows, std::int64_t cols, std::int64_t ldc, const float* x,
                       const float* y);

}  // namespace moeslim::kernels
