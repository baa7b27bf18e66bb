// What the v0 (W8A8 mixed) savers write for one module, mapped from the pipeline's file-format-independent
// QuantizedLinear / NormTensors: the values computed and checked here, their names, order, dtypes and shapes
// from the scheme table (scheme_table.h). Pure functions: the writer adds the result to its shards; tests check
// it directly. The FLOAT helpers serve the v1 (W4A8) writer too (w4a8_tensors.h).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/msmodelslim/scheme_table.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

// A FLOAT tensor as both layouts write it: `tensor` (BF16, F16 or F32, non-empty) converted to `float_dtype`
// (no copy when it already is). kInvalidArgument naming `name` otherwise.
NamedTensor float_named_tensor(const std::string& name, const Tensor& tensor, DType float_dtype);

// A kFloat linear's tensors in both layouts: weight, then bias if it has one, in float_dtype, FLOAT.
std::vector<NamedTensor> float_linear_tensors(const quant::QuantizedLinear& linear, DType float_dtype);

// One linear's tensors as the v0 scheme table lists them (`float_dtype` being the model's, BF16 or F16):
// weight_offset zeros; a kW8A8 linear's float bias typed FLOAT; deq_scale in float_encoding.h's encoding.
// kInvalidArgument naming the tensor for a wrong dtype or shape, and for a scale, offset or bias that
// float_dtype cannot hold exactly: deq_scale and quant_bias are computed from the values as they will be
// written, so rounding them here would break deq_scale = input_scale·weight_scale and the quant_bias identity
// that loaders rely on. kUnsupported for kW4A8Dynamic, which only the W4A8 layout (packed int4) holds.
std::vector<NamedTensor> w8a8_linear_tensors(const quant::QuantizedLinear& linear, DType float_dtype);

// A norm's tensors: weight, then bias (zeros when the pipeline gives none; m4 gives every norm one), in
// float_dtype, FLOAT. With `mindie_module_copies` (the MindIE safe_tensor layout), "<norm>.module.weight" and
// "<norm>.module.bias" follow with the same values, typed `model_quant_type`.
std::vector<NamedTensor> w8a8_norm_tensors(const quant::NormTensors& norm, DType float_dtype,
                                           bool mindie_module_copies, const std::string& model_quant_type);

}  // namespace moeslim::formats::msmodelslim
