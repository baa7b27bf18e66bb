// Static per-tensor asymmetric int8 activation parameters of msModelSlim's W8A8 layers
// (docs/msmodelslim-algorithms.md §4.4), computed with the model dtype's roundings:
//   mn = min(x_min, 0), mx = max(x_max, 0)
//   scale  = max(dtype(dtype(mx − mn) / 255), eps32)
//   offset = −128 − rne(dtype(mn / scale))            (an integer in [−128, 127])
// A value is quantized as x_q = clamp(rne(x / scale + offset), −128, 127) and stands for (x_q − offset)·scale.
#pragma once

#include <vector>

#include "core/dtype.h"

namespace moeslim::quant {

struct ActivationParams {
  float scale = 1.0f;
  float offset = 0.0f;
};

ActivationParams asymmetric_int8_params(float x_min, float x_max, DType float_dtype);

// The mean of `values` as PyTorch computes it on a tensor of the model dtype on the CPU:
// dtype(dtype(Σ float32) / count). kInvalidArgument when `values` is empty.
float dtype_mean(const std::vector<float>& values, DType float_dtype);

}  // namespace moeslim::quant
