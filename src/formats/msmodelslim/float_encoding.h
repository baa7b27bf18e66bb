// How float values are encoded in msModelSlim's files: FLOAT tensors and the v0 path's scales are stored in
// the model's float dtype (BF16 for a bf16 model, F16 for an fp16 one), and deq_scale is float32, or for an
// fp16 model an int64 holding the float32 bit pattern (msModelSlim's deqscale2int64).
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace moeslim::formats::msmodelslim {

// `t` (BF16, F16 or F32) converted to `dtype` (BF16, F16 or F32), rounding to nearest even. A tensor already
// of that dtype is returned as it is, without a copy (a mapped checkpoint tensor streams straight out).
// kInvalidArgument for any other dtype.
Tensor to_float_dtype(const Tensor& t, DType dtype);

// The first element of `t` (BF16, F16 or F32) that converting to `dtype` would change, or nullopt when the
// conversion is exact (a NaN stays a NaN and counts as exact).
std::optional<std::size_t> first_inexact_element(const Tensor& t, DType dtype);

// deq_scale as written for a model whose float dtype is `model_dtype`: F32 [out] for BF16 (and F32) models;
// I64 [out] holding the float32 bits sign-extended from int32 for F16 models. `deq` must be F32.
Tensor encode_deq_scale(const Tensor& deq, DType model_dtype);

// The float32 bits held in one int64 deq_scale element; nullopt when it is not a sign-extended int32.
std::optional<float> decode_int64_deq_scale(std::int64_t stored);

}  // namespace moeslim::formats::msmodelslim
