// The W4A16 runtime linear (model/weight_only_linear.h): dequantization worked by hand (groups, zero points, the
// one rounding to the model dtype), the forward on it, and refusals that name what is wrong.
#include "model/weight_only_linear.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace moeslim::model {
namespace {

Tensor i8(const Shape& shape, const std::vector<std::int8_t>& v) {
  Tensor t = Tensor::zeros(DType::kI8, shape);
  std::copy(v.begin(), v.end(), t.mutable_data<std::int8_t>());
  return t;
}

Tensor f32(const Shape& shape, const std::vector<float>& v) {
  Tensor t = Tensor::zeros(DType::kF32, shape);
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
  return t;
}

std::vector<float> values(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

// Two rows, four columns, groups of two: w = (q − z)·s.
const Tensor kCodes = i8({2, 4}, {-8, 7, 0, 1, 3, -1, 2, -2});
const Tensor kScale = f32({2, 2}, {0.5f, 0.25f, 1.0f, 0.125f});
const Tensor kZero = f32({2, 2}, {0.0f, 1.0f, -1.0f, 2.0f});

TEST(W4A16Dequantize, GroupsAndZeroPointsWorkedByHand) {
  EXPECT_EQ(values(dequantize_w4a16(kCodes, kScale, kZero, DType::kBF16)),
            (std::vector<float>{-4.0f, 3.5f, -0.25f, 0.0f, 4.0f, 0.0f, 0.0f, -0.5f}));
  EXPECT_EQ(values(dequantize_w4a16(kCodes, kScale, Tensor(), DType::kF32)),
            (std::vector<float>{-4.0f, 3.5f, 0.0f, 0.25f, 3.0f, -1.0f, 0.25f, -0.25f}));
}

TEST(W4A16Dequantize, RoundsTheProductOnceToTheModelDtype) {
  // 7 · (1 + 2⁻⁷) = 7.0546875 needs 10 significant bits: bf16 keeps 8 (→ 7.0625), f16 and f32 keep it.
  const Tensor codes = i8({1, 8}, {7, 0, 0, 0, 0, 0, 0, 0});
  const Tensor scale = f32({1, 1}, {1.0078125f});
  EXPECT_EQ(values(dequantize_w4a16(codes, scale, Tensor(), DType::kBF16))[0], 7.0625f);
  EXPECT_EQ(values(dequantize_w4a16(codes, scale, Tensor(), DType::kF16))[0], 7.0546875f);
  EXPECT_EQ(values(dequantize_w4a16(codes, scale, Tensor(), DType::kF32))[0], 7.0546875f);
  EXPECT_EQ(dequantize_w4a16(codes, scale, Tensor(), DType::kBF16).dtype(), DType::kBF16);
}

TEST(W4A16Linear, ForwardIsTheFloatLinearOnTheDequantizedWeight) {
  const auto linear = make_w4a16_linear(kCodes, kScale, kZero, f32({2}, {0.5f, -1.0f}), DType::kBF16,
                                        FloatPrecision::kF32);
  EXPECT_EQ(linear->kind(), "w4a16");
  EXPECT_EQ(linear->in_features(), 4);
  EXPECT_EQ(linear->out_features(), 2);
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<float> y(4);
  linear->forward(x.data(), 2, y.data());
  // Row 1: −4 + 7 − 0.75 + 0 + 0.5; row 2: 4 + 0 + 0 − 2 − 1; the zero token gives the bias alone.
  EXPECT_EQ(y, (std::vector<float>{2.75f, 1.0f, 0.5f, -1.0f}));
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    FAIL() << "accepted; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(W4A16Dequantize, RefusesWhatIsNotOnTheInt4Grid) {
  expect_invalid([] { dequantize_w4a16(i8({1, 4}, {0, 9, 0, 0}), f32({1, 1}, {1.0f}), Tensor(), DType::kBF16); },
                 "int4 code 9 at row 0, column 1");
  expect_invalid([] { dequantize_w4a16(kCodes, f32({2, 2}, {0.5f, 0.0f, 1.0f, 1.0f}), Tensor(), DType::kBF16); },
                 "row 0, group 1 is not a positive finite number");
  expect_invalid([] { dequantize_w4a16(kCodes, kScale, f32({2, 2}, {0, 0.5f, 0, 0}), DType::kBF16); },
                 "zero point 0.5");
  expect_invalid([] { dequantize_w4a16(kCodes, f32({2, 3}, {1, 1, 1, 1, 1, 1}), Tensor(), DType::kBF16); },
                 "3 scale groups do not divide the 4 input columns");
  expect_invalid([] { dequantize_w4a16(kCodes, f32({3, 1}, {1, 1, 1}), Tensor(), DType::kBF16); },
                 "weight_scale must be F32 [2, groups]");
  expect_invalid([] { dequantize_w4a16(kCodes, kScale, f32({2, 1}, {0, 0}), DType::kBF16); },
                 "does not match the scale");
  expect_invalid([] { dequantize_w4a16(kCodes, kScale, Tensor(), DType::kI8); }, "BF16, F16 or F32");
}

}  // namespace
}  // namespace moeslim::model
