// W4A16: a weight-only int4 linear as vLLM's compressed-tensors WNA16 kernels compute it. The weight is
// dequantized once, per group, in the model's float dtype: w[r, c] = dt((q[r, c] − z[r, g]) · s[r, g]) with
// g = c / group_size (for a BF16 or F16 scale the product is exact in float32, so dt() is the one rounding, as
// the kernels' half-precision multiply has it); then the layer runs as a float linear on it.
#pragma once

#include <memory>

#include "core/dtype.h"
#include "core/tensor.h"
#include "model/linear.h"

namespace moeslim::model {

// codes: I8 [out, in] in [−8, 7]; scale: F32 [out, groups] (groups divides in; 1 for one scale per channel),
// finite and positive; zero_point: F32 [out, groups] of integers in [−8, 7], or empty (symmetric); bias: F32
// [out] or empty. float_dtype: BF16, F16 or F32, the dtype the weight is dequantized to.
// kInvalidArgument naming the first bad code, scale or zero point, or the shape that does not fit.
std::unique_ptr<Linear> make_w4a16_linear(const Tensor& codes, const Tensor& scale, const Tensor& zero_point,
                                          const Tensor& bias, DType float_dtype, FloatPrecision precision);

// The dequantized weight alone, [out, in] in float_dtype: what make_w4a16_linear multiplies by.
Tensor dequantize_w4a16(const Tensor& codes, const Tensor& scale, const Tensor& zero_point, DType float_dtype);

}  // namespace moeslim::model
