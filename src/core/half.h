// Exact conversions between float32 and the 16-bit float formats.
// bf16 -> f32 and f16 -> f32 are exact; f32 -> bf16/f16 round to nearest, ties to even, and keep NaN a NaN.
#pragma once

#include <cstdint>
#include <cstring>
#include <cstddef>

namespace moeslim {

inline float bf16_to_f32(std::uint16_t h) {
  std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // NaN: keep sign and the top payload bits, force a quiet bit so truncation cannot make it Inf.
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  }
  const std::uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding_bias) >> 16);
}

// Round a float32 to the nearest bf16 value, returned as float32 (the "cast to bf16 and back" of PyTorch).
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);

// Bulk conversions (vectorised where the CPU allows; bit-identical to the scalar functions).
void bf16_to_f32(const std::uint16_t* src, float* dst, std::size_t n);
void f32_to_bf16(const float* src, std::uint16_t* dst, std::size_t n);
void f16_to_f32(const std::uint16_t* src, float* dst, std::size_t n);

}  // namespace moeslim
