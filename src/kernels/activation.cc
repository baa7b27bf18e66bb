// SiLU·up and softmax: the two ops built on exp.
#include <cmath>
#include <limits>

#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/ops_common.h"
#include "kernels/scalar_math.h"
#include "kernels/simd_avx512.h"
#include "kernels/softmax_row.h"

namespace moeslim::kernels {
namespace {

void silu_mul_portable(const float* gate, const float* up, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = detail::silu_portable(gate[i]) * up[i];
}

MOESLIM_AVX512 void silu_mul_avx512(const float* gate, const float* up, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(detail::silu_avx512(g), u));
  }
}

void silu_mul_dispatch(const float* gate, const float* up, float* out, std::int64_t n) {
  active_kernel_isa() == KernelIsa::kAvx512 ? silu_mul_avx512(gate, up, out, n)
                                            : silu_mul_portable(gate, up, out, n);
}

void softmax_row_portable(const float* in, float* out, std::int64_t n, float scale) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = in[i] * scale;
    if (v > max) max = v;  // NaN never wins, as with _mm512_max_ps(v, max)
  }
  float lanes[detail::kLanes] = {};
  for (std::int64_t i = 0; i < n; i += detail::kLanes) {
    for (std::int64_t j = 0; j < detail::kLanes && i + j < n; ++j) {
      const float e = detail::exp_portable(in[i + j] * scale - max);
      out[i + j] = e;
      lanes[j] += e;
    }
  }
  const float inv = 1.0f / detail::reduce_lanes(lanes);
  for (std::int64_t i = 0; i < n; ++i) out[i] = out[i] * inv;
}

MOESLIM_AVX512 void softmax_row_avx512(const float* in, float* out, std::int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 vmax = neg_inf;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 v = _mm512_mask_mul_ps(neg_inf, m, _mm512_maskz_loadu_ps(m, in + i), s);
    vmax = _mm512_max_ps(v, vmax);
  }
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));  // max is exact in any order
  __m512 sum = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, in + i), s);
    const __m512 e = _mm512_maskz_mov_ps(m, detail::exp_avx512(_mm512_sub_ps(v, max)));
    _mm512_mask_storeu_ps(out + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / detail::reduce_add_avx512(sum));
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, out + i), inv));
  }
}

}  // namespace

namespace detail {
void softmax_row(const float* in, float* out, std::int64_t n, float scale) {
  active_kernel_isa() == KernelIsa::kAvx512 ? softmax_row_avx512(in, out, n, scale)
                                            : softmax_row_portable(in, out, n, scale);
}
}  // namespace detail

void silu_mul(const float* gate, const float* up, float* out, std::int64_t n) {
  detail::require(n >= 0 && (n == 0 || (gate && up && out)), "silu_mul", "bad arguments");
  apply_num_threads();
  // Split into row-sized pieces so large inputs can use the kernel threads.
  constexpr std::int64_t kPiece = 4096;
  detail::for_each_row((n + kPiece - 1) / kPiece, kPiece, [&](std::int64_t p) {
    const std::int64_t begin = p * kPiece;
    silu_mul_dispatch(gate + begin, up + begin, out + begin, std::min(kPiece, n - begin));
  });
}

void silu_mul_fused(const float* gate_up, std::int64_t rows, std::int64_t inter, float* out) {
  detail::require(rows >= 0 && inter >= 1 && (rows == 0 || (gate_up && out)), "silu_mul_fused", "bad arguments");
  detail::for_each_row(rows, inter, [&](std::int64_t r) {
    const float* g = gate_up + r * 2 * inter;
    silu_mul_dispatch(g, g + inter, out + r * inter, inter);
  });
}

void softmax_rows(const float* x, std::int64_t rows, std::int64_t n, float* out) {
  detail::require(rows >= 0 && n >= 1 && (rows == 0 || (x && out)), "softmax_rows", "bad arguments");
  detail::for_each_row(rows, n, [&](std::int64_t r) { detail::softmax_row(x + r * n, out + r * n, n, 1.0f); });
}

}  // namespace moeslim::kernels
