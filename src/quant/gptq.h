// GPTQ (Frantar et al. 2022, "OPTQ"): weight quantization that compensates each column's rounding error on the
// columns not yet quantized, through the inverse of the layer input's Hessian H = 2/n·XᵀX (hessian.h).
// A self-contained module: the pipeline does not call it yet.
//
// The algorithm (the "lazy batch" form, everything in double):
//   1. dead columns (H_ii == 0: the input channel was always 0): H_ii = 1 and W[:, i] = 0;
//   2. act_order: the columns are quantized in descending order of diag H (a stable sort: ties keep their
//      column order), and the codes written back in the original order;
//   3. dampening: H += λI, λ = dampening · mean(diag H);
//   4. U = the upper Cholesky factor of H⁻¹ (inverse_cholesky_upper);
//   5. columns in blocks of block_size; for each column i of a block and every row:
//        q = quant(w_i), err = (w_i − deq(q)) / U_ii, then w_j −= err·U_ij for the block's later columns j;
//      after the block, every later column j takes Σ_i err_i·U_ij at once (the lazy batch update).
// The updates of each element come in ascending i whichever the block size, so the block size changes rounding
// only; rows are independent given U, so the work splits over rows and no result depends on the thread count.
//
// The grid is the v1 minmax quantizer's (v1_weight_quant.h, docs/msmodelslim-algorithms.md §6.4), applied to the
// float32 value of each working weight:
//   code = clamp(rne(dt(w / s)) + z, −2^(b−1), 2^(b−1)−1)       int4 [−8, 7], int8 [−128, 127]; dequantized (q − z)·s
//   symmetric:  s = max(dt(max|w| / (2^(b−1)−1)), dt(eps32)), z = 0 — computed by quantize_weight_minmax_v1 itself,
//               so with no compensation (a diagonal H) GPTQ returns exactly its codes and scales;
//   asymmetric: mn = min(min w, 0), mx = max(max w, 0), s = max(dt(dt(mx/(2^b−1)) − dt(mn/(2^b−1))), dt(eps32)),
//               z = min(rne(dt(−mn / s)) − 2^(b−1), 2^(b−1)−1), an integer code (§6.4's formula, the min guarding
//               against an s rounded down; no quantizer of the project uses the asymmetric form yet). Adding the
//               integer z after the rounding equals §6.4's rne(x/s + z) with the sum in float32.
// dt() rounds to options.float_dtype (F32: no rounding). The error uses the exact dequantized value (q − z)·s.
//
// Scales are per output row (group_size 0) or per group of group_size consecutive columns of the quantization
// order (with act_order, a group holds the group_size columns quantized one after another, not neighbouring
// columns; group_index maps each original column to its group, as GPTQ's g_idx). A group's parameters are
// computed when its first column is reached, from the weights with every earlier column's update: blocks are cut
// at each group's first column so that the lazy updates have all arrived. (GPTQ's reference implementation
// reads the block's weights without their in-block updates when a group starts inside a block; here the result
// does not depend on block_size.) Per-row scales come from the weights before any update (after step 1).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "quant/v1_weight_quant.h"

namespace moeslim::quant {

struct GptqOptions {
  WeightBits bits = WeightBits::kInt4;
  bool symmetric = true;
  std::int64_t group_size = 0;      // 0: one scale per output row; else a divisor of `in` (32, 64, 128 in practice)
  double dampening = 0.01;          // relative to mean(diag H); > 0
  bool act_order = false;
  std::int64_t block_size = 128;    // columns per lazy batch (speed only); ≥ 1
  DType float_dtype = DType::kBF16;  // the model's float dtype: BF16, F16 or F32
};

// What GPTQ needs of a Hessian, prepared once for all the weights that read the same input (gate_proj and
// up_proj of an expert).
struct GptqHessian {
  std::int64_t columns = 0;
  double dampening = 0.0;              // the options it was prepared with; gptq_quantize checks they match
  bool act_order = false;
  double lambda = 0.0;                 // λ added to the diagonal
  std::vector<std::int64_t> order;     // order[k]: the original column quantized k-th (identity without act_order)
  std::vector<std::uint8_t> dead;      // per original column: 1 when H_ii == 0
  std::vector<double> inverse_factor;  // U [columns, columns], H⁻¹ = UᵀU, rows and columns in quantization order
};

// Steps 1–4. `hessian`: [columns, columns] row-major, symmetric; only its upper triangle is read.
// kInvalidArgument for bad options, a size mismatch, a NaN or an infinity in H, or an H that is not positive
// definite after dampening. The last is the check a caller can fall back on (to a data-free method): it is the
// only failure a valid Hessian of a valid layer can meet, and it comes before any weight is read.
GptqHessian prepare_gptq_hessian(std::span<const double> hessian, std::int64_t columns, const GptqOptions& options);

struct GptqResult {
  Tensor codes;       // I8 [out, in], original column order (int4 codes one per int8, in [−8, 7])
  Tensor scale;       // F32 [out, groups] (groups = 1 per row), each value representable in float_dtype
  Tensor zero_point;  // F32 [out, groups], integer values, when asymmetric; else empty
  std::vector<std::int32_t> group_index;  // act_order with groups: per original column, its group; else empty
  std::vector<std::int64_t> order;        // act_order: the quantization order (GptqHessian::order); else empty
};

// `weight`: [out, in] BF16, F16 or F32 (a mapped view is fine; each row is read once). kInvalidArgument for bad
// options, a group size that does not divide `in`, a Hessian of another width or prepared with other options,
// or a weight row holding a NaN or an infinity.
GptqResult gptq_quantize(const Tensor& weight, const GptqHessian& hessian, const GptqOptions& options);

// prepare_gptq_hessian, then the above.
GptqResult gptq_quantize(const Tensor& weight, std::span<const double> hessian, const GptqOptions& options);

}  // namespace moeslim::quant
