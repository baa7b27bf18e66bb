// How float values are encoded in msModelSlim's files: FLOAT tensors and the v0 path's scales are stored in
// the model's float dtype (BF16 for a bf16 model, F16 for an fp16 one: formats/float_tensors.h), and deq_scale
// is float32, or for an fp16 model an int64 holding the float32 bit pattern (msModelSlim's deqscale2int64).
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"
#include "formats/float_tensors.h"

namespace moeslim::formats::msmodelslim {

// deq_scale as written for a model whose float dtype is `model_dtype`: F32 [out] for BF16 (and F32) models;
// I64 [out] holding the float32 bits sign-extended from int32 for F16 models. `deq` must be F32.
Tensor encode_deq_scale(const Tensor& deq, DType model_dtype);

// The float32 bits held in one int64 deq_scale element; nullopt when it is not a sign-extended int32.
std::optional<float> decode_int64_deq_scale(std::int64_t stored);

}  // namespace moeslim::formats::msmodelslim
