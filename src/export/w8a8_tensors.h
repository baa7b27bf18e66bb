// What the v0 (W8A8 mixed) savers write for one module: names, order, dtypes and shapes of
// docs/msmodelslim-format.md §2, mapped from the pipeline's file-format-independent QuantizedLinear /
// NormTensors. Pure functions: the writer adds the result to its shards; tests check it directly. NamedTensor
// and the FLOAT helpers serve the v1 (W4A8) writer too (w4a8_tensors.h).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "quant/quant_types.h"

namespace moeslim::exporter {

struct NamedTensor {
  std::string name;  // full tensor name, e.g. "model.layers.0.self_attn.q_proj.weight_scale"
  Tensor tensor;     // in its file dtype and shape
  std::string type;  // description type: "FLOAT", "W8A8", "W8A8_DYNAMIC"
};

// A FLOAT tensor as both layouts write it: `tensor` (BF16, F16 or F32, non-empty) converted to `float_dtype`
// (no copy when it already is). kInvalidArgument naming `name` otherwise.
NamedTensor float_named_tensor(const std::string& name, const Tensor& tensor, DType float_dtype);

// A kFloat linear's tensors in both layouts: weight, then bias if it has one, in float_dtype, FLOAT.
std::vector<NamedTensor> float_linear_tensors(const quant::QuantizedLinear& linear, DType float_dtype);

// One linear's tensors, in msModelSlim's order, `float_dtype` being the model's float dtype (BF16 or F16):
//   kFloat        weight, bias?                                         float_dtype, all FLOAT
//   kW8A8         weight I8 [out,in]; bias? float_dtype [out] (FLOAT); weight_scale, weight_offset (zeros)
//                 float_dtype [out,1]; input_scale, input_offset float_dtype [1]; quant_bias I32 [out];
//                 deq_scale F32 [out] (I64 holding the float32 bits for an F16 model)
//   kW8A8Dynamic  weight I8 [out,in]; weight_scale, weight_offset (zeros) float_dtype [out,1]
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

}  // namespace moeslim::exporter
