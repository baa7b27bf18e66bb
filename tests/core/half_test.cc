#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace moeslim {
namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(Bf16, EveryBf16RoundTripsExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<std::uint16_t>(h));
    EXPECT_EQ(bits_of(f), h << 16);
    if (!std::isnan(f)) {
      EXPECT_EQ(f32_to_bf16(f), h) << h;
    }
  }
}

TEST(Bf16, RoundsToNearestEven) {
  // 1.0 = 0x3f800000; the bf16 ulp at 1.0 is 2^-7. Halfway cases go to the even mantissa.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80u);  // halfway, lower is even
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82u);  // halfway, upper is even
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81u);  // just above halfway
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80u);  // just below halfway
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80u);  // FLT_MAX rounds to +Inf
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000u);
}

TEST(Bf16, NaNStaysNaN) {
  // A NaN whose payload lives only in the low 16 bits would truncate to Inf; it must stay NaN.
  const float nan_low_payload = from_bits(0x7f800001u);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(nan_low_payload))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f32_to_bf16(from_bits(0xffc00000u)) & 0x8000u, 0x8000u);  // sign kept
}

TEST(Bf16, BulkMatchesScalar) {
  std::vector<float> src = {0.1f, -3.5f, 1e30f, -1e-30f, 65504.f, 1.00390625f};
  std::vector<std::uint16_t> dst(src.size());
  f32_to_bf16(src.data(), dst.data(), src.size());
  std::vector<float> back(src.size());
  bf16_to_f32(dst.data(), back.data(), src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(dst[i], f32_to_bf16(src[i]));
    EXPECT_EQ(back[i], round_to_bf16(src[i]));
  }
}

TEST(F16, EveryF16RoundTripsExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
}

TEST(F16, KnownValuesAndRounding) {
  EXPECT_EQ(f16_to_f32(0x3c00u), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001u), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bffu), 65504.0f);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);  // halfway to the next binade rounds to Inf
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);        // halfway to the smallest subnormal: even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -24)), 0x0002u);        // 1.5 units: to even (2)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);  // halfway above 1.0 -> even
}

}  // namespace
}  // namespace moeslim
