// The per-row work has an AVX-512 form for bf16 models (the common case; it runs over every expert weight)
// that performs the same IEEE operations in the same order (division, bf16 round-to-nearest-even of the
// quotient, clamp, round half to even), so the codes are bit-identical to the scalar path.
#include "quant/weight_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "kernels/simd_avx512.h"
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

void quantize_row_scalar(const float* w, std::int64_t n, float s, DType float_dtype, std::int8_t* codes) {
  for (std::int64_t k = 0; k < n; ++k) {
    const float v = std::nearbyint(round_to_float_dtype(w[k] / s, float_dtype));
    codes[k] = static_cast<std::int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
}

// bf16 rounding of finite values as in core/half.h: add 0x7fff plus the lowest kept bit, drop 16 bits.
MOESLIM_AVX512 inline __m512 round_to_bf16_avx512(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
}

MOESLIM_AVX512 void quantize_row_bf16_avx512(const float* w, std::int64_t n, float s, std::int8_t* codes) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (std::int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = kernels::detail::first_lanes(n - k);
    const __m512 q = round_to_bf16_avx512(_mm512_div_ps(_mm512_maskz_loadu_ps(m, w + k), vs));
    const __m512 c = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
    const __m512i i = _mm512_cvt_roundps_epi32(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_cvtepi32_storeu_epi8(codes + k, m, i);
  }
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
  const bool avx512 = float_dtype == DType::kBF16 && kernels::active_kernel_isa() == kernels::KernelIsa::kAvx512;
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
      if (avx512) {
        quantize_row_bf16_avx512(row.data(), in, s, codes + n * in);
      } else {
        quantize_row_scalar(row.data(), in, s, float_dtype, codes + n * in);
      }
    }
  }
  if (bad_row >= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "weight row " + std::to_string(bad_row) + " holds a NaN or an infinity; it cannot be quantized");
  }
  return q;
}

}  // namespace moeslim::quant
