// Per-output-channel symmetric int8 weight quantization of msModelSlim's v0 W8A8 path
// (docs/msmodelslim-algorithms.md §4.3), used for both W8A8 (static) and W8A8_DYNAMIC linears.
// Every step rounds to the model's float dtype as PyTorch does on a bf16 model:
//   s_n = max(dtype(max_k |W[n,k]| / 127), eps32)
//   q[n,k] = clamp(rne(dtype(W[n,k] / s_n)), −127, 127)
// The quotient's rounding to bf16 before the integer rounding matters (it changes ~8 % of the codes of a
// random matrix), and the clamp is the symmetric [−127, 127].
#pragma once

#include "core/tensor.h"

namespace moeslim::quant {

struct ChannelQuantizedWeight {
  Tensor codes;  // I8 [out, in]
  Tensor scale;  // F32 [out], each value representable in the model's float dtype
};

// `weight`: [out, in] in BF16, F16 or F32 (a mapped view is fine; it is read once, row by row).
// `float_dtype`: the model's float dtype (BF16 or F16; F32 does no intermediate rounding).
ChannelQuantizedWeight quantize_weight_int8_per_channel(const Tensor& weight, DType float_dtype);

// float32 machine epsilon (2^-23): msModelSlim's lower bound for every scale.
inline constexpr float kScaleEpsilon = 1.1920928955078125e-07f;

}  // namespace moeslim::quant
