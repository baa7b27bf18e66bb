// Static asymmetric int8 activation parameters against docs/msmodelslim-algorithms.md §4.4:
//   mn = min(x_min, 0), mx = max(x_max, 0)
//   scale = max(bf16(bf16(mx − mn) / 255), eps32),   offset = −128 − rne(bf16(mn / scale))
// and the bf16 mean of the observer, bf16(bf16(Σ fp32) / n). Expected values are hand-worked (checked with
// an independent bf16 emulation) and, where useful, also written as the formula over core/half.h's rounding.
#include "quant/activation_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "quant_test_util.h"

namespace moeslim::quant {
namespace {

using testing::kEps32;

TEST(ActivationParams, MixedSignRangeScaleAndOffset) {
  // range 4 → 4/255 = 0.015686 → bf16 0.0157470703125; −1/scale = −63.504 → bf16 −63.5 → rne −64 → offset −64.
  const ActivationParams p = asymmetric_int8_params(-1.0f, 3.0f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.0157470703125f);
  EXPECT_EQ(p.scale, round_to_bf16(4.0f / 255.0f));
  EXPECT_EQ(p.offset, -64.0f);
}

TEST(ActivationParams, AllPositiveRangeClampsMinToZeroSoOffsetIsMinus128) {
  // mn = min(0.5, 0) = 0: the range is [0, 2], and 0 maps to code −128.
  const ActivationParams p = asymmetric_int8_params(0.5f, 2.0f, DType::kBF16);
  EXPECT_EQ(p.scale, round_to_bf16(2.0f / 255.0f));
  EXPECT_EQ(p.scale, 0.00787353515625f);
  EXPECT_EQ(p.offset, -128.0f);
}

TEST(ActivationParams, AllNegativeRangeClampsMaxToZero) {
  // mx = 0, mn = −2: scale = bf16(2/255) = 0.00787353515625; −2/scale = −254.016 → bf16 −254 → offset 126.
  const ActivationParams p = asymmetric_int8_params(-2.0f, -0.5f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.00787353515625f);
  EXPECT_EQ(p.offset, 126.0f);
}

TEST(ActivationParams, ZeroRangeIsFlooredAtEps32) {
  for (const DType dt : {DType::kBF16, DType::kF32}) {
    const ActivationParams p = asymmetric_int8_params(0.0f, 0.0f, dt);
    EXPECT_EQ(p.scale, kEps32);
    EXPECT_EQ(p.offset, -128.0f);
  }
}

TEST(ActivationParams, RangeIsRoundedToBf16BeforeTheDivision) {
  // mx − mn = 1.005859375 → bf16 1.0078125; scale = bf16(1.0078125/255) = 0.00396728515625, whereas
  // bf16(1.005859375/255) would be 0.003936767578125.
  const ActivationParams p = asymmetric_int8_params(-0.005859375f, 1.0f, DType::kBF16);
  ASSERT_EQ(round_to_bf16(1.005859375f / 255.0f), 0.003936767578125f);  // premise
  EXPECT_EQ(p.scale, 0.00396728515625f);
  EXPECT_EQ(p.offset, -127.0f);
}

TEST(ActivationParams, OffsetQuotientIsRoundedToBf16BeforeRne) {
  // scale = bf16(bf16(1.515625)/255) = 0.005950927734375; mn/scale = −86.646 → bf16 −86.5 → rne −86 → −42.
  // Without the bf16 step: rne(−86.646) = −87 → −41.
  const ActivationParams p = asymmetric_int8_params(-0.515625f, 1.0f, DType::kBF16);
  EXPECT_EQ(p.scale, 0.005950927734375f);
  ASSERT_EQ(std::nearbyint(-0.515625f / p.scale), -87.0f);  // premise
  EXPECT_EQ(p.offset, -42.0f);
}

TEST(ActivationParams, F32DtypeDoesNoIntermediateRounding) {
  const ActivationParams p = asymmetric_int8_params(-1.0f, 3.0f, DType::kF32);
  EXPECT_EQ(p.scale, 4.0f / 255.0f);
  EXPECT_EQ(p.offset, -128.0f - std::nearbyint(-1.0f / (4.0f / 255.0f)));  // −1/scale = −63.75 → −64
  EXPECT_EQ(p.offset, -64.0f);
}

TEST(ActivationParams, RangeEndsMapToTheInt8Extremes) {
  // Property of the formulas: with x_q = rne(x/scale + offset), mn lands on −128 and mx on 126 or 127, never
  // outside [−128, 127] (the offset absorbs mn's rounding), for arbitrary bf16 ranges.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  for (int i = 0; i < 500; ++i) {
    float lo = round_to_bf16(u(rng)), hi = round_to_bf16(u(rng));
    if (lo > hi) std::swap(lo, hi);
    const ActivationParams p = asymmetric_int8_params(lo, hi, DType::kBF16);
    const float mn = std::min(lo, 0.0f), mx = std::max(hi, 0.0f);
    EXPECT_EQ(p.offset, std::nearbyint(p.offset));
    EXPECT_GE(p.offset, -128.0f);
    EXPECT_LE(p.offset, 127.0f);
    EXPECT_NEAR(std::nearbyint(mn / p.scale + p.offset), -128.0f, 1.0f) << lo << " " << hi;
    const float top = std::nearbyint(mx / p.scale + p.offset);
    EXPECT_GE(top, 125.0f) << lo << " " << hi;
    EXPECT_LE(top, 128.0f) << lo << " " << hi;
  }
}

TEST(ActivationParams, NonFiniteRangeIsRejected) {
  EXPECT_THROW(asymmetric_int8_params(NAN, 1.0f, DType::kBF16), Error);
  EXPECT_THROW(asymmetric_int8_params(-1.0f, std::numeric_limits<float>::infinity(), DType::kBF16), Error);
}

TEST(DtypeMean, RoundsTheFloat32SumToBf16BeforeDividing) {
  // Σ = 1.0166015625 → bf16 1.015625; /3 → bf16 0.337890625. The float32 mean 0.33887 would round to 0.33984375.
  const std::vector<float> v = {1.0f, 0.0166015625f, 0.0f};
  ASSERT_EQ(round_to_bf16((1.0f + 0.0166015625f) / 3.0f), 0.33984375f);  // premise
  EXPECT_EQ(dtype_mean(v, DType::kBF16), 0.337890625f);
  EXPECT_EQ(dtype_mean(v, DType::kBF16), round_to_bf16(round_to_bf16(1.0166015625f) / 3.0f));
}

TEST(DtypeMean, F32IsThePlainMeanAndEmptyIsAnError) {
  EXPECT_EQ(dtype_mean({1.0f, 0.0166015625f, 0.0f}, DType::kF32), 1.0166015625f / 3.0f);
  EXPECT_EQ(dtype_mean({-2.0f, 4.0f}, DType::kBF16), 1.0f);
  EXPECT_THROW(dtype_mean({}, DType::kBF16), Error);
}

}  // namespace
}  // namespace moeslim::quant
