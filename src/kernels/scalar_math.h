// Scalar building blocks of the portable kernels, written so that the AVX-512 versions (simd_avx512.h) can
// repeat the very same operations lane by lane and give bit-identical results.
// The kernels library is compiled with -ffp-contract=off, so a*b+c here is a multiply and an add, as in the
// SIMD code, never a fused multiply-add.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace moeslim::kernels::detail {

// Lane count of the SIMD reductions; the portable reductions keep this many partial sums too.
inline constexpr int kLanes = 16;

// Cephes-style expf: exp(x) = 2^n · e^r with n = round(x·log2 e), |r| ≤ ln2/2, r computed in two steps
// (0.693359375 has few bits, so n·C1 is exact), and a degree-7 polynomial. Error ≤ 1 ulp over the range
// (checked against double exp in the tests). 2^n is applied in two halves so subnormal results are right.
inline constexpr float kExpOverflow = 88.7228394f;    // exp(x) > FLT_MAX above this
inline constexpr float kExpUnderflow = -103.972084f;  // exp(x) < smallest subnormal / 2 below this
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpP0 = 1.9875691500e-4f;
inline constexpr float kExpP1 = 1.3981999507e-3f;
inline constexpr float kExpP2 = 8.3334519073e-3f;
inline constexpr float kExpP3 = 4.1665795894e-2f;
inline constexpr float kExpP4 = 1.6666665459e-1f;
inline constexpr float kExpP5 = 5.0000001201e-1f;

inline float pow2_int(std::int32_t k) {  // 2^k for k in [-126, 127]
  const std::uint32_t bits = static_cast<std::uint32_t>(k + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float exp_portable(float x) {
  if (std::isnan(x)) return x;
  if (x > kExpOverflow) return std::numeric_limits<float>::infinity();
  if (x < kExpUnderflow) return 0.0f;
  const float n = std::nearbyint(x * kLog2e);
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  const float r2 = r * r;
  float p = kExpP0;
  p = p * r + kExpP1;
  p = p * r + kExpP2;
  p = p * r + kExpP3;
  p = p * r + kExpP4;
  p = p * r + kExpP5;
  const float y = (p * r2 + r) + 1.0f;
  const auto ni = static_cast<std::int32_t>(n);
  const std::int32_t n1 = ni >> 1;  // arithmetic shift (floor), as _mm512_srai_epi32
  return y * pow2_int(n1) * pow2_int(ni - n1);
}

// SiLU as PyTorch computes it on CPU: x / (1 + exp(-x)).
inline float silu_portable(float x) { return x / (1.0f + exp_portable(-x)); }

// Round half to even of |v| < 2^22 without a libm call (std::nearbyint is not inlined, so not vectorised, on
// baseline x86-64): v + 1.5·2^23 lands in [2^23, 2^24), where the float spacing is 1, so the addition rounds
// v to an integer in the default (nearest-even) mode and the subtraction is exact. Callers clamp to an integer
// code range first, which commutes with the rounding because the bounds are integers.
inline float round_half_even_small(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23
  return (v + kMagic) - kMagic;
}

// Sum of kLanes partial sums in the fixed tree order the SIMD reduction uses: halves added pairwise
// (lane j += lane j+8, then j+4, j+2, j+1).
inline float reduce_lanes(float* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return lanes[0];
}

}  // namespace moeslim::kernels::detail
