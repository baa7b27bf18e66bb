#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/ops_common.h"
#include "kernels/scalar_math.h"
#include "kernels/simd_avx512.h"

#include "core/half.h"

namespace moeslim::kernels {
namespace {

inline float weight_at(const float* w, std::int64_t i) { return w[i]; }
inline float weight_at(const std::uint16_t* w, std::int64_t i) { return moeslim::bf16_to_f32(w[i]); }

// 1/√(mean(x²) + eps) with the sum of squares kept in kLanes partial sums, as the AVX-512 path does.
template <typename W>
void rms_norm_row_portable(const float* x, std::int64_t n, const W* w, float eps, float* out) {
  float lanes[detail::kLanes] = {};
  for (std::int64_t i = 0; i < n; i += detail::kLanes) {
    for (std::int64_t j = 0; j < detail::kLanes && i + j < n; ++j) lanes[j] += x[i + j] * x[i + j];
  }
  const float mean = detail::reduce_lanes(lanes) / static_cast<float>(n);
  const float r = 1.0f / std::sqrt(mean + eps);
  for (std::int64_t i = 0; i < n; ++i) out[i] = (x[i] * r) * weight_at(w, i);
}

MOESLIM_AVX512 inline __m512 load_weight(const float* w, __mmask16 m) { return _mm512_maskz_loadu_ps(m, w); }
MOESLIM_AVX512 inline __m512 load_weight(const std::uint16_t* w, __mmask16 m) {
  return detail::bf16_to_f32_avx512(_mm256_maskz_loadu_epi16(m, w));
}

template <typename W>
MOESLIM_AVX512 void rms_norm_row_avx512(const float* x, std::int64_t n, const W* w, float eps, float* out) {
  __m512 acc = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(detail::first_lanes(n - i), x + i);
    acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));  // masked lanes add 0·0: unchanged, as in the portable loop
  }
  const float mean = detail::reduce_add_avx512(acc) / static_cast<float>(n);
  const __m512 r = _mm512_set1_ps(1.0f / std::sqrt(mean + eps));
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, load_weight(w + i, m)));
  }
}

template <typename W>
void rms_norm_impl(const float* x, std::int64_t rows, std::int64_t n, const W* w, float eps, float* out) {
  detail::require(rows >= 0 && n >= 1 && (rows == 0 || (x && w && out)), "rms_norm",
                  "bad arguments: rows=" + std::to_string(rows) + " n=" + std::to_string(n));
  if (active_kernel_isa() == KernelIsa::kAvx512) {
    detail::for_each_row(rows, n, [&](std::int64_t r) { rms_norm_row_avx512(x + r * n, n, w, eps, out + r * n); });
  } else {
    detail::for_each_row(rows, n, [&](std::int64_t r) { rms_norm_row_portable(x + r * n, n, w, eps, out + r * n); });
  }
}

}  // namespace

void rms_norm(const float* x, std::int64_t rows, std::int64_t n, const float* weight, float eps, float* out) {
  rms_norm_impl(x, rows, n, weight, eps, out);
}

void rms_norm(const float* x, std::int64_t rows, std::int64_t n, const std::uint16_t* weight_bf16, float eps,
              float* out) {
  rms_norm_impl(x, rows, n, weight_bf16, eps, out);
}

}  // namespace moeslim::kernels
