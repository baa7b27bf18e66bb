// The AVX-512 loops do the float32 multiplies and adds of the portable loops, in the same order per element
// (separate mul and add: this library is built with -ffp-contract=off, so the compiler fuses neither; a fused
// multiply-add rounds once where the portable path rounds twice). They keep 8 independent sums in flight (4 rows
// × 32 columns, or 8 output rows × 16 columns) so they run at the adders' throughput rather than their latency:
// Qwen3-235B has 2.4G expert weights per layer, each costing 32 multiply-adds.
#include "kernels/block_rotation.h"

#include <algorithm>

#include "kernels/cpu_features.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

// Rows multiplied by a block together on the AVX-512 path.
constexpr std::int64_t kRowGroup = 4;

bool use_avx512(std::int64_t block) { return block % 32 == 0 && active_kernel_isa() == KernelIsa::kAvx512; }

// y[0, k) = x[0, k) · m (k×k): y[j] = ((0 + x[0]·m[0][j]) + x[1]·m[1][j]) + ...
void right_block_portable(const float* m, std::int64_t k, const float* x, float* __restrict y) {
  std::fill(y, y + k, 0.0f);
  for (std::int64_t i = 0; i < k; ++i) {
    const float xi = x[i];
    const float* __restrict mi = m + i * k;
    for (std::int64_t j = 0; j < k; ++j) y[j] += xi * mi[j];
  }
}

// The same for R rows at once (x and y rows `ld` apart); k a multiple of 32.
template <int R>
MOESLIM_AVX512 void right_block_avx512(const float* m, std::int64_t k, const float* x, std::int64_t ld, float* y) {
  for (std::int64_t j0 = 0; j0 < k; j0 += 32) {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < k; ++i) {
      const __m512 m0 = _mm512_loadu_ps(m + i * k + j0);
      const __m512 m1 = _mm512_loadu_ps(m + i * k + j0 + 16);
      for (int r = 0; r < R; ++r) {
        const __m512 xi = _mm512_set1_ps(x[r * ld + i]);
        acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_mul_ps(xi, m0));
        acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_mul_ps(xi, m1));
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(y + r * ld + j0, acc[r][0]);
      _mm512_storeu_ps(y + r * ld + j0 + 16, acc[r][1]);
    }
  }
}

// out[j][0, w) = Σ_i m[i][j] · in[i][0, w) for j < k, summed in i order; in and out hold k rows of w.
void left_block_portable(const float* m, std::int64_t k, const float* in, std::int64_t w, float* out) {
  for (std::int64_t j = 0; j < k; ++j) {
    float* __restrict o = out + j * w;
    std::fill(o, o + w, 0.0f);
    for (std::int64_t i = 0; i < k; ++i) {
      const float a = m[i * k + j];
      const float* __restrict xi = in + i * w;
      for (std::int64_t c = 0; c < w; ++c) o[c] += a * xi[c];
    }
  }
}

// The same, 8 output rows × 16 columns at a time; k a multiple of 32.
MOESLIM_AVX512 void left_block_avx512(const float* m, std::int64_t k, const float* in, std::int64_t w, float* out) {
  for (std::int64_t j0 = 0; j0 < k; j0 += 8) {
    for (std::int64_t c = 0; c < w; c += 16) {
      const __mmask16 lanes = detail::first_lanes(w - c);
      __m512 acc[8];
      for (int jj = 0; jj < 8; ++jj) acc[jj] = _mm512_setzero_ps();
      for (std::int64_t i = 0; i < k; ++i) {
        const __m512 xi = _mm512_maskz_loadu_ps(lanes, in + i * w + c);
        const float* mi = m + i * k + j0;
        for (int jj = 0; jj < 8; ++jj) acc[jj] = _mm512_add_ps(acc[jj], _mm512_mul_ps(_mm512_set1_ps(mi[jj]), xi));
      }
      for (int jj = 0; jj < 8; ++jj) _mm512_mask_storeu_ps(out + (j0 + jj) * w + c, lanes, acc[jj]);
    }
  }
}

}  // namespace

void right_multiply_block(const float* m, std::int64_t k, const float* x, std::int64_t rows, std::int64_t ld,
                          float* y) {
  if (!use_avx512(k)) {
    for (std::int64_t row = 0; row < rows; ++row) right_block_portable(m, k, x + row * ld, y + row * ld);
    return;
  }
  std::int64_t row = 0;
  for (; row + kRowGroup <= rows; row += kRowGroup) {
    right_block_avx512<kRowGroup>(m, k, x + row * ld, ld, y + row * ld);
  }
  for (; row < rows; ++row) right_block_avx512<1>(m, k, x + row * ld, ld, y + row * ld);
}

void left_multiply_block_transposed(const float* m, std::int64_t k, const float* in, std::int64_t w, float* out) {
  use_avx512(k) ? left_block_avx512(m, k, in, w, out) : left_block_portable(m, k, in, w, out);
}

}  // namespace moeslim::kernels
