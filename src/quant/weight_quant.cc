#include "quant/weight_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/threading.h"

namespace moeslim::quant {

ChannelQuantizedWeight quantize_weight_int8_per_channel(const Tensor& weight, DType float_dtype) {
  if (weight.rank() != 2 || !is_float_dtype(weight.dtype())) {
    throw Error(ErrorCode::kInvalidArgument,
                "weight to quantize must be a 2-D float tensor, got " + std::string(dtype_name(weight.dtype())) +
                    " " + shape_to_string(weight.shape()));
  }
  const std::int64_t out = weight.dim(0), in = weight.dim(1);
  ChannelQuantizedWeight q{Tensor::zeros(DType::kI8, {out, in}), Tensor::zeros(DType::kF32, {out})};
  std::int8_t* codes = q.codes.mutable_data<std::int8_t>();
  float* scales = q.scale.mutable_data<float>();
  const float eps = round_to_float_dtype(kScaleEpsilon, float_dtype);

#pragma omp parallel num_threads(kernels::num_threads()) if (out * in >= (1 << 20))
  {
    std::vector<float> row(static_cast<std::size_t>(in));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < out; ++n) {
      weight.read_f32(static_cast<std::size_t>(n * in), static_cast<std::size_t>(in), row.data());
      float amax = 0.0f;
      for (const float w : row) amax = std::max(amax, std::fabs(w));
      const float s = std::max(round_to_float_dtype(amax / 127.0f, float_dtype), eps);
      scales[n] = s;
      std::int8_t* c = codes + n * in;
      for (std::int64_t k = 0; k < in; ++k) {
        const float v = std::nearbyint(round_to_float_dtype(row[static_cast<std::size_t>(k)] / s, float_dtype));
        c[k] = static_cast<std::int8_t>(std::clamp(v, -127.0f, 127.0f));
      }
    }
  }
  return q;
}

}  // namespace moeslim::quant
