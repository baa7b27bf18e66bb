// What msModelSlim's v1 saver (`ascendv1_saver`, the W4A8 mixed layout) writes for one module: names, order,
// dtypes and shapes of docs/msmodelslim-format.md §5 (docs/msmodelslim-algorithms.md §6.5), mapped from the
// pipeline's QuantizedLinear / NormTensors. Pure functions like w8a8_tensors.h: the v1 writer adds the result
// to its shards, and `inspect` shares the scale_bias shape rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/msmodelslim/scheme_table.h"
#include "formats/msmodelslim/w8a8_tensors.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

// scale_bias of int4 `codes` (I8 [out, in]) with per-row `weight_scale` (F32 with `out` elements), each row
// split into `columns` equal contiguous chunks: F32 [out, columns], element [n, j] = 8 · Σ_{k in chunk j}
// q[n,k]·s[n]. The sum is exact (an integer code sum times one float32 fits a double's 53 bits) and rounded to
// float32 once, so this is the correctly rounded value; msModelSlim's float32 summation may differ from it by
// its own rounding error, which `inspect` tolerates. kInvalidArgument naming `tensor_name` if in % columns != 0.
Tensor w4a8_scale_bias(const Tensor& codes, const Tensor& weight_scale, std::int64_t columns,
                       const std::string& tensor_name);

// One quantized linear's tensors as the v1 scheme table lists them, all typed by the linear's scheme: int8
// codes use all of [-128, 127]; a kW4A8Dynamic weight is pack_int4_rows of codes in [-8, 7], with its
// scale_bias (w4a8_scale_bias); weight_offset zeros.
// kInvalidArgument naming the tensor for a wrong dtype or shape, an int4 code out of range, an odd `out`, a
// scale that is not finite and positive, or a bias (dynamic loaders have no bias input: it would be dropped).
// kUnsupported for kW8A8 (static activations exist only in the v0 layouts), for kFloat (the writer's float
// path writes those) and for W4A8_DYNAMIC on a module other than gate_proj / up_proj / down_proj.
std::vector<NamedTensor> w4a8_linear_tensors(const quant::QuantizedLinear& linear);

// A norm in the v1 layout: its weight only, in float_dtype, FLOAT (flex smoothing gives norms no bias). An
// all-zero bias is dropped, as it changes nothing; any other bias is kInvalidArgument naming the norm, since
// the layout has no place for it (the loaders' RMSNorm has no bias).
std::vector<NamedTensor> w4a8_norm_tensors(const quant::NormTensors& norm, DType float_dtype);

}  // namespace moeslim::formats::msmodelslim
