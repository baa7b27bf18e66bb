// `moeslim inspect` for msModelSlim's three layouts: checks a quantized output directory against the layout's
// scheme table (scheme_table.h) and the arithmetic its loaders rely on, and summarises it.
//
// What is checked:
//  * files: a description file (quant_model_description.json, or the MindIE layout's
//    quant_model_description_w8a8_dynamic.json) with the layout's header keys in place; one shard index whose
//    weight_map matches the shards exactly (every entry in its shard, no tensor outside the index, no shard
//    outside the index, total_size = the tensors' bytes); config.json with the layout's keys and a
//    num_hidden_layers equal to the layers present;
//  * every tensor described and every description entry present;
//  * per scheme, the tensors, dtypes and shapes of docs/msmodelslim-format.md §2/§5 (W8A8: weight I8 [out,in], bias? [out],
//    weight_scale / weight_offset [out,1], input_scale / input_offset [1], quant_bias I32 [out], deq_scale
//    F32 [out] or I64 for an fp16 model; W8A8_DYNAMIC: weight, weight_scale, weight_offset; W4A8_DYNAMIC
//    (gate/up/down_proj only): weight I8 [out/2,in] (int4 packed along the output dimension), weight_scale /
//    weight_offset F32 [out,1], scale_bias F32 [out,1] (gate/up_proj) or [out,16] (down_proj); scales F32 in
//    the W4A8 layout, the model's dtype in the v0 ones; FLOAT: float in the model's dtype; norms: weight +
//    bias, and their .module copies in the MindIE layout; in the W4A8 layout weight only, no bias);
//  * values: weight codes in [-127, 127] (v0 layouts), weight_offset zero, input_offset an integer in
//    [-128, 127], scales positive, no NaN or Inf in any float tensor, and for W8A8 static linears
//      deq_scale[n]  == float32(round_to_model_dtype(input_scale · weight_scale[n]))   bit for bit
//      quant_bias[n] == rne(float32(bias[n] / deq_scale[n]) − Σ_k weight[n,k] · input_offset)
//    in float32 arithmetic (bias 0 when absent). A quant_bias one away from that is accepted only when the
//    exact value lies within float32 rounding error of a .5 tie, where the same formula evaluated in another
//    order (double, or an NPU's reciprocal division) legitimately rounds the other way. For W4A8_DYNAMIC
//      scale_bias[n, j] == 8 · Σ_{k in chunk j} q[n,k] · weight_scale[n]   (q: the unpacked int4 codes)
//    within float32 summation error: γ_m·8·s·Σ|q| over a chunk of m inputs (γ_m = m·u/(1 − m·u), u = 2^-24,
//    the bound for any float32 summation order) plus half an ulp; a bf16 computation would be rejected;
//  * the W4A8 layout's config.json: no quantization_config and no quantize key.
#pragma once

#include <filesystem>
#include <optional>

#include "formats/inspect_report.h"
#include "formats/msmodelslim/scheme_table.h"

namespace moeslim::formats::msmodelslim {

// Inspects `dir` as the layout its description file shows; with `expected`, a directory holding another
// layout is a violation. Problems are collected in the report, not thrown. Throws only kNotFound when `dir`
// is not a directory.
InspectReport inspect_output_dir(const std::filesystem::path& dir, std::optional<Layout> expected = std::nullopt);

// The layout `dir`'s description file shows (file name and header key order); nullopt without one.
std::optional<Layout> detect_layout(const std::filesystem::path& dir);

}  // namespace moeslim::formats::msmodelslim
