// AVX-512 building blocks; each mirrors a function of scalar_math.h operation for operation, so the two
// kernel paths give bit-identical results. Only for files whose functions carry MOESLIM_AVX512; callers
// check cpu support (cpu_features.h) first.
#pragma once

// GCC 12 warns that _mm512_undefined_ps()'s self-initialised variable "may be used uninitialized" wherever the
// masked intrinsics inline (GCC bug 105593, fixed in GCC 13); the warning points into the intrinsics headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#include "kernels/scalar_math.h"

// avx512f/bw/vl is all these kernels need: the GEMM-heavy work (where BF16, VNNI and AMX pay) is in oneDNN.
#define MOESLIM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace moeslim::kernels::detail {

// Mask of the first n (0..16) lanes.
MOESLIM_AVX512 inline __mmask16 first_lanes(std::int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}

MOESLIM_AVX512 inline __m512 exp_avx512(__m512 x) {
  const __m512 hi = _mm512_set1_ps(kExpOverflow);
  const __m512 lo = _mm512_set1_ps(kExpUnderflow);
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  // Clamp so special lanes stay finite through the integer conversion; they are replaced at the end.
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Hi)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Lo)));
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(kExpP0);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpP1));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpP2));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpP3));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpP4));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpP5));
  const __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, r2), r), _mm512_set1_ps(1.0f));
  const __m512i ni = _mm512_cvttps_epi32(n);
  const __m512i n1 = _mm512_srai_epi32(ni, 1);
  const __m512i n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  __m512 result = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
  result = _mm512_mask_blend_ps(overflow, result, _mm512_set1_ps(__builtin_huge_valf()));
  result = _mm512_mask_blend_ps(underflow, result, _mm512_setzero_ps());
  return _mm512_mask_blend_ps(is_nan, result, x);
}

MOESLIM_AVX512 inline __m512 silu_avx512(__m512 x) {
  const __m512 neg = _mm512_sub_ps(_mm512_setzero_ps(), x);
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_avx512(neg)));
}

// reduce_lanes() of scalar_math.h: lane j += lane j+8, then j+4, j+2, j+1.
MOESLIM_AVX512 inline float reduce_add_avx512(__m512 v) {
  const __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
  const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
  const __m128 v1 = _mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1));
  return _mm_cvtss_f32(v1);
}

// moeslim::bf16_rounded_bits (core/half.h) lane by lane: float32 bits rounded to bf16, for lanes that are no NaN.
MOESLIM_AVX512 inline __m512i bf16_rounded_bits_avx512(__m512i bits) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_and_si512(rounded, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
}

// moeslim::round_to_bf16_non_nan lane by lane.
MOESLIM_AVX512 inline __m512 round_to_bf16_non_nan_avx512(__m512 x) {
  return _mm512_castsi512_ps(bf16_rounded_bits_avx512(_mm512_castps_si512(x)));
}

// Round float32 lanes to bf16, nearest-even, NaN kept a quiet NaN: exactly moeslim::f32_to_bf16.
MOESLIM_AVX512 inline __m256i f32_to_bf16_avx512(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i abs = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
  const __m512i rounded = _mm512_srli_epi32(bf16_rounded_bits_avx512(bits), 16);
  const __m512i quiet_nan = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, quiet_nan));
}

MOESLIM_AVX512 inline __m512 bf16_to_f32_avx512(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

}  // namespace moeslim::kernels::detail
