#include "quant/activation_quant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {

ActivationParams asymmetric_int8_params(float x_min, float x_max, DType float_dtype) {
  if (!std::isfinite(x_min) || !std::isfinite(x_max)) {
    throw Error(ErrorCode::kInvalidArgument, "activation range is not finite (min " + std::to_string(x_min) +
                                                 ", max " + std::to_string(x_max) + ")");
  }
  const float mn = std::min(x_min, 0.0f);
  const float mx = std::max(x_max, 0.0f);
  const float range = round_to_float_dtype(mx - mn, float_dtype);
  const float scale = std::max(round_to_float_dtype(range / 255.0f, float_dtype),
                               round_to_float_dtype(kScaleEpsilon, float_dtype));
  const float offset = -128.0f - std::nearbyint(round_to_float_dtype(mn / scale, float_dtype));
  return ActivationParams{scale, offset};
}

float dtype_mean(const std::vector<float>& values, DType float_dtype) {
  if (values.empty()) throw Error(ErrorCode::kInvalidArgument, "mean of no values");
  float sum = 0.0f;
  for (const float v : values) sum += v;
  return round_to_float_dtype(round_to_float_dtype(sum, float_dtype) / static_cast<float>(values.size()),
                              float_dtype);
}

}  // namespace moeslim::quant
