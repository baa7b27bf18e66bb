// Float tensors as a format stores them: in the model's float dtype (BF16 for a bf16 model, F16 for an fp16 one),
// converted exactly where the values must survive (scales).
#pragma once

#include <cstddef>
#include <optional>

#include "core/tensor.h"

namespace moeslim::formats {

// `t` (BF16, F16 or F32) converted to `dtype` (BF16, F16 or F32), rounding to nearest even. A tensor already
// of that dtype is returned as it is, without a copy (a mapped checkpoint tensor streams straight out).
// kInvalidArgument for any other dtype.
Tensor to_float_dtype(const Tensor& t, DType dtype);

// The first element of `t` (BF16, F16 or F32) that converting to `dtype` would change, or nullopt when the
// conversion is exact (a NaN stays a NaN and counts as exact).
std::optional<std::size_t> first_inexact_element(const Tensor& t, DType dtype);

// Whether every value of `t` (BF16, F16 or F32) is zero: a stored bias or offset that changes nothing.
bool all_zero(const Tensor& t);

}  // namespace moeslim::formats
