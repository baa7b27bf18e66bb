// The MoE block's row moves: gathering the rows routed to an expert, adding its weighted output back, and
// adding a block's output to the residual stream.
#include <cstring>

#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/ops_common.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

void add_scaled_row_portable(const float* src, float weight, std::int64_t cols, float* dst) {
  for (std::int64_t j = 0; j < cols; ++j) dst[j] += src[j] * weight;
}

MOESLIM_AVX512 void add_scaled_row_avx512(const float* src, float weight, std::int64_t cols, float* dst) {
  const __m512 w = _mm512_set1_ps(weight);
  for (std::int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = detail::first_lanes(cols - j);
    const __m512 product = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + j), w);
    _mm512_mask_storeu_ps(dst + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + j), product));
  }
}

void add_row(const float* src, std::int64_t cols, float* dst) {
  for (std::int64_t j = 0; j < cols; ++j) dst[j] += src[j];
}

}  // namespace

void gather_rows(const float* x, std::int64_t cols, const std::int32_t* rows, std::int64_t n, float* out) {
  detail::require(cols >= 1 && n >= 0 && (n == 0 || (x && rows && out)), "gather_rows", "bad arguments");
  detail::for_each_row(n, cols, [&](std::int64_t i) {
    std::memcpy(out + i * cols, x + static_cast<std::int64_t>(rows[i]) * cols, static_cast<std::size_t>(cols) * sizeof(float));
  });
}

void add_weighted_rows(const float* src, std::int64_t n, std::int64_t cols, const std::int32_t* rows,
                       const float* weights, float* dst) {
  detail::require(cols >= 1 && n >= 0 && (n == 0 || (src && rows && weights && dst)), "add_weighted_rows",
                  "bad arguments");
  const bool avx512 = active_kernel_isa() == KernelIsa::kAvx512;
  detail::for_each_row(n, cols, [&](std::int64_t i) {
    float* d = dst + static_cast<std::int64_t>(rows[i]) * cols;
    avx512 ? add_scaled_row_avx512(src + i * cols, weights[i], cols, d)
           : add_scaled_row_portable(src + i * cols, weights[i], cols, d);
  });
}

void add_rows(const float* src, std::int64_t rows, std::int64_t cols, float* dst) {
  detail::require(cols >= 1 && rows >= 0 && (rows == 0 || (src && dst)), "add_rows", "bad arguments");
  detail::for_each_row(rows, cols, [&](std::int64_t i) { add_row(src + i * cols, cols, dst + i * cols); });
}

}  // namespace moeslim::kernels
