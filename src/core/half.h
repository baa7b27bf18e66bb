// Exact conversions between float32 and the 16-bit float formats.
// bf16 -> f32 and f16 -> f32 are exact; f32 -> bf16/f16 round to nearest, ties to even, and keep NaN a NaN.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace moeslim {

inline float bf16_to_f32(std::uint16_t h) {
  std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The float32 bits of the bf16 nearest to a float32 that is not a NaN (ties to even; ±Inf stays ±Inf): add
// 0x7fff plus the lowest kept bit, drop the low 16 bits. The one bf16 rounding of the project (the AVX-512
// kernels mirror it lane by lane); branch-free, so loops over it vectorise. A NaN near the top of the payload
// range would carry into the sign and exponent: f32_to_bf16 handles NaN first.
inline std::uint32_t bf16_rounded_bits(std::uint32_t bits) {
  return (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
}

inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // NaN: keep sign and the top payload bits, force a quiet bit so truncation cannot make it Inf.
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  }
  return static_cast<std::uint16_t>(bf16_rounded_bits(bits) >> 16);
}

// Round a float32 to the nearest bf16 value, returned as float32 (the "cast to bf16 and back" of PyTorch).
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// round_to_bf16 for a value known not to be a NaN (same bits), without the NaN test: for vectorised loops.
// (The default NaN that arithmetic produces also comes through as a NaN.)
inline float round_to_bf16_non_nan(float f) {
  return std::bit_cast<float>(bf16_rounded_bits(std::bit_cast<std::uint32_t>(f)));
}

float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);

// Bulk conversions (vectorised where the CPU allows; bit-identical to the scalar functions).
void bf16_to_f32(const std::uint16_t* src, float* dst, std::size_t n);
void f32_to_bf16(const float* src, std::uint16_t* dst, std::size_t n);
void f16_to_f32(const std::uint16_t* src, float* dst, std::size_t n);

}  // namespace moeslim
