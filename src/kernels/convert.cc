#include "kernels/convert.h"

#include "core/half.h"
#include "kernels/cpu_features.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

void f32_to_bf16_portable(const float* src, std::uint16_t* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = moeslim::f32_to_bf16(src[i]);
}

void bf16_to_f32_portable(const std::uint16_t* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = moeslim::bf16_to_f32(src[i]);
}

void split3_portable(const float* src, std::int64_t n, std::uint16_t* hi, std::uint16_t* mid, std::uint16_t* lo) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = src[i];
    hi[i] = moeslim::f32_to_bf16(x);
    const float r1 = x - moeslim::bf16_to_f32(hi[i]);
    mid[i] = moeslim::f32_to_bf16(r1);
    const float r2 = r1 - moeslim::bf16_to_f32(mid[i]);
    lo[i] = moeslim::f32_to_bf16(r2);
  }
}

void round_to_bf16_portable(const float* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = moeslim::round_to_bf16(src[i]);
}

MOESLIM_AVX512 void round_to_bf16_avx512(const float* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m256i h = detail::f32_to_bf16_avx512(_mm512_maskz_loadu_ps(m, src + i));
    _mm512_mask_storeu_ps(dst + i, m, detail::bf16_to_f32_avx512(h));
  }
}

MOESLIM_AVX512 void f32_to_bf16_avx512(const float* src, std::uint16_t* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m256i h = detail::f32_to_bf16_avx512(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, h);
  }
}

MOESLIM_AVX512 void bf16_to_f32_avx512(const std::uint16_t* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 f = detail::bf16_to_f32_avx512(_mm256_maskz_loadu_epi16(m, src + i));
    _mm512_mask_storeu_ps(dst + i, m, f);
  }
}

MOESLIM_AVX512 void split3_avx512(const float* src, std::int64_t n, std::uint16_t* hi, std::uint16_t* mid,
                                  std::uint16_t* lo) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, src + i);
    const __m256i h = detail::f32_to_bf16_avx512(x);
    const __m512 r1 = _mm512_sub_ps(x, detail::bf16_to_f32_avx512(h));
    const __m256i md = detail::f32_to_bf16_avx512(r1);
    const __m512 r2 = _mm512_sub_ps(r1, detail::bf16_to_f32_avx512(md));
    _mm256_mask_storeu_epi16(hi + i, m, h);
    _mm256_mask_storeu_epi16(mid + i, m, md);
    _mm256_mask_storeu_epi16(lo + i, m, detail::f32_to_bf16_avx512(r2));
  }
}

bool use_avx512() { return active_kernel_isa() == KernelIsa::kAvx512; }

}  // namespace

void f32_to_bf16(const float* src, std::uint16_t* dst, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  use_avx512() ? f32_to_bf16_avx512(src, dst, count) : f32_to_bf16_portable(src, dst, count);
}

void bf16_to_f32(const std::uint16_t* src, float* dst, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  use_avx512() ? bf16_to_f32_avx512(src, dst, count) : bf16_to_f32_portable(src, dst, count);
}

void f32_to_bf16_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                      std::uint16_t* dst, std::int64_t ld_dst) {
  const bool simd = use_avx512();
  for (std::int64_t r = 0; r < rows; ++r) {
    simd ? f32_to_bf16_avx512(src + r * ld_src, dst + r * ld_dst, cols)
         : f32_to_bf16_portable(src + r * ld_src, dst + r * ld_dst, cols);
  }
}

void round_to_bf16_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src, float* dst,
                        std::int64_t ld_dst) {
  const bool simd = use_avx512();
  for (std::int64_t r = 0; r < rows; ++r) {
    simd ? round_to_bf16_avx512(src + r * ld_src, dst + r * ld_dst, cols)
         : round_to_bf16_portable(src + r * ld_src, dst + r * ld_dst, cols);
  }
}

void split_f32_to_bf16x3_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                              std::uint16_t* hi, std::uint16_t* mid, std::uint16_t* lo) {
  const bool simd = use_avx512();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t o = r * cols;
    simd ? split3_avx512(src + r * ld_src, cols, hi + o, mid + o, lo + o)
         : split3_portable(src + r * ld_src, cols, hi + o, mid + o, lo + o);
  }
}

}  // namespace moeslim::kernels
