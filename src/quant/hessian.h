// The input Hessian of a linear layer and the factor of its inverse that GPTQ reads (gptq.h).
//
// Convention: H = 2/n · Σ_t x_t x_tᵀ over the n input rows x_t of the layer, i.e. the Hessian of the mean over
// rows of ‖x_t·(W − Ŵ)ᵀ‖², which is what GPTQ's reference implementation accumulates. The scale does not change
// GPTQ's result (up to rounding): its dampening is relative to mean(diag H).
//
// Sums are in double. Each product x_i·x_j of two floats is exact in double; the sums of every element run over
// the rows in the order they were added, whatever the thread count, so H (and U below) are bit-identical on
// 1 or N threads.
#pragma once

#include <cstdint>
#include <vector>

namespace moeslim::quant {

class HessianAccumulator {
 public:
  // kInvalidArgument when columns < 1.
  explicit HessianAccumulator(std::int64_t columns);

  // Adds the rows x[0, rows) (row-major, `columns` contiguous floats each). kInvalidArgument when `columns` is
  // not the accumulator's. NaN and infinities are summed as they are: GPTQ then rejects the Hessian.
  void add(const float* x, std::int64_t rows, std::int64_t columns);

  std::int64_t columns() const { return columns_; }
  std::int64_t rows() const { return rows_; }

  // H = 2/n · Σ x xᵀ, [columns, columns] row-major, both triangles filled. kInvalidArgument before any row.
  std::vector<double> hessian() const;

 private:
  std::int64_t columns_;
  std::int64_t rows_ = 0;
  // Σ x xᵀ. The upper triangle is what counts; the 4×4 tiles on the diagonal also hold their lower elements
  // (the same sums, summed in the same order).
  std::vector<double> sum_;
};

// U, upper triangular with a positive diagonal, such that H⁻¹ = UᵀU: the upper Cholesky factor of H⁻¹.
// `h`: [n, n] row-major, symmetric, both triangles (its buffer is reused). Returns U [n, n] row-major, zero
// below the diagonal. Computed without forming H⁻¹: with J the reversal of the index order, J·H·J = RᵀR (R
// upper) gives H = (J·Rᵀ·J)(J·Rᵀ·J)ᵀ, so U = (J·Rᵀ·J)⁻¹ = J·R⁻ᵀ·J, one Cholesky and one triangular inverse.
// kInvalidArgument when a Cholesky pivot is not positive (H is not numerically positive definite).
std::vector<double> inverse_cholesky_upper(std::vector<double> h, std::int64_t n);

}  // namespace moeslim::quant
