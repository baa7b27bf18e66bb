// W4A16 linears (QuantScheme::kW4A16): int4 weights on GPTQ's grid (gptq.h), per group of input columns or per
// output channel, symmetric or with integer zero points, and float activations. GPTQ fits them to the Hessian of
// the linear's inputs; without calibration data they are rounded to nearest on the same grid (minmax).
#pragma once

#include "core/dtype.h"
#include "core/tensor.h"
#include "model/module_id.h"
#include "quant/gptq.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

// GPTQ's options for `grid` on a model of `float_dtype`: int4, the full code range [−8, 7].
GptqOptions w4a16_options(const WeightGrid& grid, DType float_dtype);

// The linear GPTQ's (or round_to_nearest's) result on `grid` describes: codes, scale [out, groups], zero points.
QuantizedLinear w4a16_linear(const model::ModuleId& module, const WeightGrid& grid, GptqResult result);

// round_to_nearest on `grid`: a W4A16 linear without calibration data. Errors name the module's weight.
QuantizedLinear quantize_w4a16_minmax(const model::ModuleId& module, const Tensor& weight, const WeightGrid& grid,
                                      DType float_dtype);

}  // namespace moeslim::quant
