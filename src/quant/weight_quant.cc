// The per-row codes are kernels::quantize_row_codes (AVX-512 where the CPU has it, bit-identical to the
// portable path); it runs over every expert weight.
#include "quant/weight_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"

namespace moeslim::quant {
namespace {

// The row's scale, or NaN when the row holds a NaN or an infinity.
float row_scale(const float* w, std::int64_t n, DType float_dtype, float eps) {
  float amax = 0.0f;
  for (std::int64_t k = 0; k < n; ++k) {
    if (!std::isfinite(w[k])) return NAN;
    amax = std::max(amax, std::fabs(w[k]));
  }
  return std::max(round_to_float_dtype(amax / 127.0f, float_dtype), eps);
}

}  // namespace

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
  std::int64_t bad_row = -1;

#pragma omp parallel num_threads(kernels::num_threads()) if (out * in >= (1 << 20))
  {
    std::vector<float> row(static_cast<std::size_t>(in));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < out; ++n) {
      weight.read_f32(static_cast<std::size_t>(n * in), static_cast<std::size_t>(in), row.data());
      const float s = row_scale(row.data(), in, float_dtype, eps);
      scales[n] = s;
      if (std::isnan(s)) {
#pragma omp critical
        bad_row = n;
        continue;
      }
      kernels::quantize_row_codes(row.data(), in, s, float_dtype, {-127.0f, 127.0f}, codes + n * in);
    }
  }
  if (bad_row >= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "weight row " + std::to_string(bad_row) + " holds a NaN or an infinity; it cannot be quantized");
  }
  return q;
}

}  // namespace moeslim::quant
