// From a float linear to the QuantizedLinear the writers and the runtime take
// (docs/msmodelslim-algorithms.md §4.3, §4.6).
#pragma once

#include "core/tensor.h"
#include "quant/activation_quant.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

// The weight part, shared by W8A8 and W8A8_DYNAMIC: int8 codes and per-channel scales (weight_quant.h).
// `bias` (F32 [out] or empty) is kept as the float bias. For kW8A8 the activation fields stay empty until
// set_static_activation().
QuantizedLinear quantize_linear_weight(const model::ModuleId& module, QuantScheme scheme, const Tensor& weight,
                                       const Tensor& bias, DType float_dtype);

// Completes a kW8A8 linear with its calibrated activation parameters:
//   input_scale, input_offset = params
//   deq_scale[n]  = float32(dtype(input_scale · weight_scale[n]))
//   quant_bias[n] = rne(bias[n] / deq_scale[n] − Σ_k weight[n,k] · input_offset)   (bias 0 when absent)
void set_static_activation(QuantizedLinear& linear, const ActivationParams& params, DType float_dtype);

}  // namespace moeslim::quant
