// GPTQ (Frantar et al. 2022, "OPTQ"): weight quantization that compensates each column's rounding error on the
// columns not yet quantized, through the layer input's Hessian H = 2/n·XᵀX (hessian.h).
//
// The algorithm, in float32:
//   1. dead columns (H_ii == 0: the input channel was always 0): H_ii = 1 and W[:, i] = 0;
//   2. act_order: the columns are quantized in descending order of diag H (a stable sort: ties keep their
//      column order), and the codes written back in the original order;
//   3. dampening: H += λI, λ = dampening · mean(diag H);
//   4. F = unit_lower_factor(H) (hessian.h): H = R·Rᵀ with R upper, F = (R with its columns scaled to a unit
//      diagonal)ᵀ, lower (computed from H equilibrated to a unit diagonal, so a diagonal spanning 10⁶ costs no
//      accuracy);
//   5. column by column, for every row: w̃_j = W_j + Σ_{i<j} F_ji·(W_i − deq(q_i)), q_j = quant(w̃_j).
// Step 5 is GPTQ's recursion in another form. The paper's: with U the upper Cholesky factor of H⁻¹,
// err_i = (w̃_i − deq(q_i)) / U_ii and w̃_j −= err_i·U_ij. Summed up, W − deq(Q) = Err·U, so Err = (W − deq(Q))·U⁻¹
// and, as U⁻¹ = R (H⁻¹ = R⁻ᵀR⁻¹ and the factor is unique), w̃_j = deq(q_j) + err_j·U_jj = W_j + Σ_{i<j}
// (W_i − deq(q_i))·R_ij / R_jj. Same codes in exact arithmetic; but this form needs only the Cholesky factor of
// H: no triangular inverse (as many flops as the factorisation) and no division by U_ii. In float32 it is
// GPTQ's rounding-level twin (tests/quant/gptq_test.cc compares both with the paper's recursion in double).
//
// The sums of step 5 are lazy, at three levels, all adding into the working weights in quantization order
// (kept transposed, [in, out], so that a column is a contiguous vector over the rows):
//   within a sub-block of 16 columns, after each column, by a rank-one vector update of the sub-block's later
//     columns (kernels::add_outer_product);
//   within a block of block_size columns, after each sub-block, by one GEMM into the block's later columns;
//   after each block, by one GEMM into every later column: W̃ᵀ[b1:] += F[b1:, b0:b1]·Dᵀ[b0:b1], D = W − deq(Q).
// Block and sub-block sizes change rounding only. The GEMMs are oneDNN's f32 matmul (kernels/dense_linalg.h,
// bit-identical on any thread count), reading F's rows in place; the rest runs on the calling thread. Callers
// quantize several linears at once with kernels::run_tasks (each then single-threaded); the result does not
// depend on the thread count.
//
// The grid is the v1 minmax quantizer's (v1_weight_quant.h, docs/msmodelslim-algorithms.md §6.4), applied to the
// float32 value of each working weight:
//   code = clamp(rne(dt(w / s)) + z, −2^(b−1), 2^(b−1)−1)       int4 [−8, 7], int8 [−128, 127]; dequantized (q − z)·s
//               (narrow_range: the low end is −(2^(b−1)−1), as msModelSlim v0's int8 weights)
//   symmetric:  s = max(dt(max|w| / (2^(b−1)−1)), dt(eps32)), z = 0 — quantize_weight_minmax_v1's formula and
//               rounding (kernels::quantize_codes_elementwise), so with no compensation (a diagonal H) GPTQ
//               returns exactly its codes and scales;
//   asymmetric: mn = min(min w, 0), mx = max(max w, 0), s = max(dt(dt(mx/(2^b−1)) − dt(mn/(2^b−1))), dt(eps32)),
//               z = min(rne(dt(−mn / s)) − 2^(b−1), 2^(b−1)−1), an integer code (§6.4's formula, the min guarding
//               against an s rounded down; no quantizer of the project uses the asymmetric form yet). Adding the
//               integer z after the rounding equals §6.4's rne(x/s + z) with the sum in float32.
// dt() rounds to options.float_dtype (F32: no rounding). deq(q) = (q − z)·s in float32.
//
// Scales are per output row (group_size 0) or per group of group_size consecutive columns of the quantization
// order (with act_order, a group holds the group_size columns quantized one after another, not neighbouring
// columns; group_index maps each original column to its group, as GPTQ's g_idx). A group's parameters are
// computed when its first column k is reached, from the group's weights with every earlier column's compensation
// as the paper's recursion has them then: w_G = W_G − Err_{<k}·U_{<k,G}. The partial sums of step 5 are not
// that (the two forms agree on a column only once every column before it is in), but they give it: with
// U = R⁻¹ blockwise, U_{<k,G} = −U_{<k,<k}·R_{<k,G}·U_GG, so w_G = W_G + (W̃_G − W_G)·F_GG⁻ᵀ, one small
// triangular inverse and GEMM per group. Sub-blocks are cut at each group's first column, and blocks so that a
// group starting inside one ends in it, so that W̃_G holds every earlier column's sum then. (GPTQ's reference
// implementation reads the block's weights without their in-block updates when a group starts inside a block;
// here the result does not depend on block_size.) Per-row scales come from the weights before any update (after
// step 1).
//
// static_groups: each group's parameters come from the weights before any update (after step 1), as per-row
// scales do, and the groups are group_size neighbouring columns of the original order whatever the quantization
// order (llm-compressor's "weight"/"static" activation ordering). Then act_order reorders the compensation but
// not the groups, and a loader needs no g_idx: compressed-tensors' fused-MoE loaders in vLLM take contiguous
// groups only (docs/compressed-tensors.md §3.a).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/large_buffer.h"
#include "core/tensor.h"
#include "quant/v1_weight_quant.h"

namespace moeslim::quant {

struct GptqOptions {
  WeightBits bits = WeightBits::kInt4;
  bool symmetric = true;
  // Symmetric codes in [−(2^(b−1)−1), 2^(b−1)−1] instead of down to −2^(b−1): msModelSlim v0's int8 weights are
  // clamped to ±127 (quantize_weight_int8_per_channel), and its W8A8 linears are written so.
  bool narrow_range = false;
  std::int64_t group_size = 0;      // 0: one scale per output row; else a divisor of `in` (32, 64, 128 in practice)
  bool static_groups = false;       // groups' parameters from the unupdated weights, groups contiguous (above)
  double dampening = 0.01;          // relative to mean(diag H); > 0
  bool act_order = false;
  // Columns per lazy batch (rounding only); ≥ 1. It is the batch GEMM's K: oneDNN's f32 GEMM runs at ~190
  // GFLOP/s at K = 128 against ~170 at 64 (Zen 4, one thread), while the in-block work (sub-block GEMMs of K = 16,
  // ~6 % of the flops at 128) grows with the block; 64, 128 and 256 measured within noise of each other.
  std::int64_t block_size = 128;
  DType float_dtype = DType::kBF16;  // the model's float dtype: BF16, F16 or F32
};

// What GPTQ needs of a Hessian, prepared once for all the weights that read the same input (gate_proj and
// up_proj of an expert).
struct GptqHessian {
  std::int64_t columns = 0;
  double dampening = 0.0;           // the options it was prepared with; gptq_quantize checks they match
  bool act_order = false;
  double lambda = 0.0;              // λ added to the diagonal
  std::vector<std::int64_t> order;  // order[k]: the original column quantized k-th (identity without act_order)
  std::vector<std::uint8_t> dead;   // per original column: 1 when H_ii == 0
  // F [columns, columns] row-major (hessian.h's unit_lower_factor of the permuted, dampened H): lower with a
  // unit diagonal, rows and columns in quantization order.
  LargeVector<float> factor;
};

// Steps 1–4. `hessian`: [columns, columns] row-major, symmetric; only its upper triangle is read.
// kInvalidArgument for bad options, a size mismatch, a NaN or an infinity in H, or an H that is not positive
// definite after dampening. The last is the check a caller can fall back on (to a data-free method): it is the
// only failure a valid Hessian of a valid layer can meet, and it comes before any weight is read.
GptqHessian prepare_gptq_hessian(std::span<const float> hessian, std::int64_t columns, const GptqOptions& options);

struct GptqResult {
  Tensor codes;       // I8 [out, in], original column order (int4 codes one per int8, in [−8, 7])
  Tensor scale;       // F32 [out, groups] (groups = 1 per row), each value representable in float_dtype
  Tensor zero_point;  // F32 [out, groups], integer values, when asymmetric; else empty
  // act_order with groups that are not static_groups: per original column, its group; else empty
  std::vector<std::int32_t> group_index;
  std::vector<std::int64_t> order;        // act_order: the quantization order (GptqHessian::order); else empty
};

// `weight`: [out, in] BF16, F16 or F32 (a mapped view is fine; each row is read once). kInvalidArgument for bad
// options, a group size that does not divide `in`, a Hessian of another width or prepared with other options,
// or a weight row holding a NaN or an infinity.
GptqResult gptq_quantize(const Tensor& weight, const GptqHessian& hessian, const GptqOptions& options);

// prepare_gptq_hessian, then the above.
GptqResult gptq_quantize(const Tensor& weight, std::span<const float> hessian, const GptqOptions& options);

// The same grid without compensation: every code rounded to nearest, each group's (or row's) parameters from its
// own weights, groups contiguous. What gptq_quantize gives for a diagonal Hessian, without one: the data-free
// quantizer of a grouped linear (a W4A16 group's minmax, and GPTQ's fallback for a starved expert). The options'
// dampening, act_order, static_groups and block_size do not apply. Errors as gptq_quantize's.
GptqResult round_to_nearest(const Tensor& weight, const GptqOptions& options);

}  // namespace moeslim::quant
