// The integer linears that execute a quantized output directory, with the loader arithmetic of
// docs/msmodelslim-format.md §7 (what MindIE / vLLM-Ascend compute), so `eval` measures the written model and
// not a float approximation of it:
//   W8A8 (static):  x_q = clamp(rne(x / input_scale + input_offset), −128, 127) per element;
//                   y = deq_scale ⊙ (x_q·Wᵀ + quant_bias)        (the float bias is inside quant_bias)
//   W8A8_DYNAMIC:   s_t = max_k |x[t,k]| / 127 per token; x_q = clamp(rne(x / s_t), −127, 127);
//                   y = (x_q·Wᵀ) ⊙ s_t ⊙ weight_scale           (+ bias, if one is given)
//   W4A8_DYNAMIC:   the same on int4 codes unpacked to int8.
// Activation quantization is float32 (one division, one addition, round half to even); the dot products are
// exact int32 (kernels/gemm_int8.h); the dequantisation is float(integer) times the scales, left to right.
// A token row whose every value is 0 gives exactly 0 (not 0/0). A row holding NaN or ±Inf gives a NaN row, as
// the float model would, instead of whatever an integer code of NaN would be.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "model/linear.h"

namespace moeslim::model {

// weight: I8 [out, in] codes; deq_scale: F32 [out]; quant_bias: I32 [out]. input_scale must be finite and > 0;
// input_offset finite. kInvalidArgument on wrong dtypes, shapes or scales.
std::unique_ptr<Linear> make_w8a8_static_linear(const Tensor& weight, float input_scale, float input_offset,
                                                const Tensor& deq_scale, const Tensor& quant_bias);

// weight: I8 [out, in] codes; weight_scale: F32 with `out` elements ([out] or [out, 1]); bias: F32 [out] or
// empty (msModelSlim writes none for these layers; a given one is added after dequantisation).
std::unique_ptr<Linear> make_w8a8_dynamic_linear(const Tensor& weight, const Tensor& weight_scale,
                                                 const Tensor& bias = Tensor());

// packed_weight: I8 [out/2, in], two int4 codes per byte along the output dimension (see unpack_int4_rows);
// weight_scale: F32 with `out` elements.
std::unique_ptr<Linear> make_w4a8_dynamic_linear(const Tensor& packed_weight, const Tensor& weight_scale,
                                                 const Tensor& bias = Tensor());

// The same linear from int4 codes one per byte: I8 [out, in] in [−8, 7] (compressed-tensors' int-quantized
// layout). kInvalidArgument naming the row and column of a code outside [−8, 7].
std::unique_ptr<Linear> make_w4a8_dynamic_linear_from_codes(const Tensor& codes, const Tensor& weight_scale,
                                                            const Tensor& bias = Tensor());

// kInvalidArgument unless `codes` is a non-empty 2-D I8 tensor [out, in] of int4 values in [−8, 7], naming the
// row and column of the first code out of range.
void check_int4_codes(const Tensor& codes);

// msModelSlim's int4 packing (docs/msmodelslim-format.md §5): byte[r, c] = (q[2r+1, c] << 4) | (q[2r, c] & 0xF),
// codes in [−8, 7].
// I8 [rows, in] → I8 [2·rows, in]: even output rows from the low nibbles, odd rows from the high nibbles,
// sign-extended.
Tensor unpack_int4_rows(const Tensor& packed);

// The inverse, as the W4A8 writer stores int4 weights: I8 codes [out, in] in [−8, 7] → I8 [out/2, in].
// kInvalidArgument for a dtype other than I8, a shape that is not 2-D with an even, nonzero `out`, or a code
// outside [−8, 7] (naming its row and column: it would silently wrap into its neighbour's nibble).
Tensor pack_int4_rows(const Tensor& codes);

}  // namespace moeslim::model
