// The input Hessian of a linear layer and the triangular factors GPTQ reads (gptq.h).
//
// Convention: H = 2/n · Σ_t x_t x_tᵀ over the n input rows x_t of the layer, i.e. the Hessian of the mean over
// rows of ‖x_t·(W − Ŵ)ᵀ‖², which is what GPTQ's reference implementation accumulates. The scale does not change
// GPTQ's result (up to rounding): its dampening is relative to mean(diag H).
//
// Float32 throughout, at GEMM speed (kernels/dense_linalg.h): Σ x xᵀ is summed by oneDNN matmuls (float32
// accumulation inside each GEMM of up to 512 rows, then float32 sums of those; the rows may be rounded to bf16
// first, the precision of the run's float passes, at about three times the rate), and the factors come from a
// blocked float32 Cholesky. Nothing depends on the thread count: the same bits on 1 or N threads.
//
// The factors are of H with its diagonal equilibrated: S = E⁻¹·H·E⁻¹ with E = diag(√H_ii), so S has a unit
// diagonal, and the factor of H is the factor of S scaled back by E, which is exact algebra (see each
// function). With massive activations diag H spans ~10⁶: S keeps every intermediate of the float32
// factorisation near 1 whatever the spread (no overflow or underflow, pivots compared on one scale), its
// condition number is within a factor n of the best any diagonal scaling gives (van der Sluis), and a failed
// pivot is reported on that relative scale. (The Cholesky algorithm itself is nearly indifferent to diagonal
// scaling, its errors being governed by S's condition number; kernels' DenseLinalgCholesky tests show it
// commutes exactly with power-of-two scalings.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/gemm.h"

namespace moeslim::quant {

class HessianAccumulator {
 public:
  // kInvalidArgument when columns < 1. At kBF16 each row is rounded to bf16 before its products are summed.
  explicit HessianAccumulator(std::int64_t columns, kernels::GemmPrecision precision = kernels::GemmPrecision::kF32);

  // Adds the rows x[0, rows) (row-major, `columns` contiguous floats each; thousands of rows per call are fine).
  // kInvalidArgument when `columns` is not the accumulator's. NaN and infinities are summed as they are: GPTQ
  // then rejects the Hessian.
  void add(const float* x, std::int64_t rows, std::int64_t columns);

  std::int64_t columns() const { return columns_; }
  std::int64_t rows() const { return rows_; }

  // H = 2/n · Σ x xᵀ, [columns, columns] row-major, both triangles filled (the upper mirrors the lower).
  // kInvalidArgument before any row. On an rvalue (std::move(acc).hessian()) the sums' buffer becomes H, saving
  // a columns² allocation (whose fresh pages are slow on some machines); the accumulator is then spent.
  LargeVector<float> hessian() const&;
  LargeVector<float> hessian() &&;

 private:
  std::int64_t columns_;
  kernels::GemmPrecision precision_;
  std::int64_t rows_ = 0;
  LargeVector<float> sum_;  // Σ x xᵀ; its lower triangle is what counts (dense_linalg.h's gram_matrix)
};

// U, upper triangular with a positive diagonal, such that H⁻¹ = UᵀU: the upper Cholesky factor of H⁻¹.
// `h`: [n, n] row-major, symmetric; only its upper triangle is read (its buffer is reused). Returns U [n, n]
// row-major, zero below the diagonal. Computed without forming H⁻¹, from the equilibrated S (above): with J the
// reversal of the index order, J·S·J = L·Lᵀ (L lower) gives S = (J·L·J)(J·L·J)ᵀ, so S⁻¹ = U_SᵀU_S with
// U_S = (J·L·J)⁻¹ = J·L⁻¹·J, upper. Then H⁻¹ = E⁻¹·S⁻¹·E⁻¹ = (U_S·E⁻¹)ᵀ(U_S·E⁻¹), and U_S·E⁻¹ (column j of
// U_S divided by √H_jj) is upper with a positive diagonal, so it is the unique factor U.
// kInvalidArgument when H is not numerically positive definite: a diagonal element that is not positive and
// finite, or a Cholesky pivot of S that is not; the message names the column (in h's order).
LargeVector<float> inverse_cholesky_upper(LargeVector<float> h, std::int64_t n);

// F, lower triangular with a unit diagonal, such that H = Fᵀ·Δ·F for a positive diagonal Δ: with H = R·Rᵀ
// (R upper, positive diagonal r; the factorisation the reversal gives), F = (R·diag(r)⁻¹)ᵀ. It is U⁻¹ (above)
// transposed and scaled, obtained without any inverse, and it is what GPTQ reads (gptq.h): row j holds the
// weights of the earlier columns' errors in column j's compensation, so GPTQ's GEMMs read it row by row.
// From J·S·J = L·Lᵀ: S = R_S·R_Sᵀ with R_S = J·L·J (upper), H = (E·R_S)(E·R_S)ᵀ, so
// F[j][i] = E_i·R_S[i][j] / (E_j·R_S[j][j]).
// `h`: [n, n] row-major, symmetric; only its upper triangle above the diagonal is read, and the diagonal from
// `diagonal` (n values) when that is not empty, else from h (GPTQ passes its dampened diagonal, so that H itself
// is not copied). Returns F [n, n] row-major, zero above the diagonal. kInvalidArgument as above.
LargeVector<float> unit_lower_factor(std::span<const float> h, std::int64_t n, std::span<const float> diagonal = {});

}  // namespace moeslim::quant
