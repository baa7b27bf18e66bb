// msModelSlim's int4 packing (spec §5): byte[r, c] = (q[2r+1, c] << 4) | (q[2r, c] & 0xF), codes in [-8, 7].
// pack_int4_rows is what the W4A8 writer stores, unpack_int4_rows what the runtime and `inspect` read back.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "model/quantized_linear.h"
#include "tiny_quantized_model.h"

namespace moeslim::model {
namespace {

using formats::msmodelslim::testing::i8_codes;

std::vector<int> as_ints(const Tensor& t) {
  std::vector<int> v;
  for (std::size_t i = 0; i < t.numel(); ++i) v.push_back(t.data<std::int8_t>()[i]);
  return v;
}

Error error_of(const Tensor& codes) {
  try {
    pack_int4_rows(codes);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no moeslim::Error";
  return Error(ErrorCode::kInternal, "none");
}

TEST(Int4PackRows, BytesFollowTheSpecFormulaByHand) {
  // Rows 0/1 pack into byte row 0, rows 2/3 into byte row 1; the even row is the low nibble.
  const Tensor codes = i8_codes({4, 3}, {1, -1, -8,    //
                                         2, 7, -1,     //
                                         0, -8, 3,     //
                                         -3, 0, -2});
  const Tensor packed = pack_int4_rows(codes);
  ASSERT_EQ(packed.dtype(), DType::kI8);
  ASSERT_EQ(packed.shape(), (Shape{2, 3}));
  const auto* b = packed.data<std::uint8_t>();
  EXPECT_EQ(b[0], 0x21);  // (2 << 4) | 1
  EXPECT_EQ(b[1], 0x7F);  // (7 << 4) | (-1 & 0xF)
  EXPECT_EQ(b[2], 0xF8);  // (-1 << 4) | (-8 & 0xF)
  EXPECT_EQ(b[3], 0xD0);  // (-3 << 4) | 0
  EXPECT_EQ(b[4], 0x08);  // (0 << 4) | (-8 & 0xF)
  EXPECT_EQ(b[5], 0xE3);  // (-2 << 4) | 3
}

TEST(Int4PackRows, EveryPairOfTheSixteenCodesRoundTrips) {
  // 16 x 16 pairs: row 0 takes every code for the low nibble, row 1 every code for the high one.
  std::vector<int> values(2 * 256);
  for (int lo = -8; lo <= 7; ++lo) {
    for (int hi = -8; hi <= 7; ++hi) {
      const int c = (lo + 8) * 16 + (hi + 8);
      values[c] = lo;
      values[256 + c] = hi;
    }
  }
  const Tensor codes = i8_codes({2, 256}, values);
  const Tensor packed = pack_int4_rows(codes);
  ASSERT_EQ(packed.shape(), (Shape{1, 256}));
  for (int c = 0; c < 256; ++c) {
    // Each byte value 0..255 appears exactly once.
    const auto byte = packed.data<std::uint8_t>()[c];
    EXPECT_EQ(byte, static_cast<std::uint8_t>(((values[256 + c] & 0xF) << 4) | (values[c] & 0xF))) << c;
  }
  EXPECT_EQ(as_ints(unpack_int4_rows(packed)), values);
}

TEST(Int4PackRows, RoundTripWithOddAndEvenInputWidths) {
  for (const std::int64_t in : {1, 5, 8, 33}) {
    const std::int64_t out = 6;
    std::vector<int> values(static_cast<std::size_t>(out * in));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<int>((i * 7 + 3) % 16) - 8;
    const Tensor codes = i8_codes({out, in}, values);
    const Tensor packed = pack_int4_rows(codes);
    EXPECT_EQ(packed.shape(), (Shape{out / 2, in})) << "in = " << in;
    const Tensor back = unpack_int4_rows(packed);
    EXPECT_EQ(back.shape(), (Shape{out, in}));
    EXPECT_EQ(as_ints(back), values) << "in = " << in;
  }
}

TEST(Int4PackRows, NegativeCodesComeBackSignExtended) {
  const Tensor back = unpack_int4_rows(pack_int4_rows(i8_codes({2, 2}, {-8, -1, -5, -2})));
  EXPECT_EQ(as_ints(back), (std::vector<int>{-8, -1, -5, -2}));
}

TEST(Int4PackRows, OddRowCountIsRejected) {
  const Error e = error_of(i8_codes({3, 4}, std::vector<int>(12, 0)));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(e.detail().find("3 rows"), std::string::npos) << e.what();
}

TEST(Int4PackRows, OutOfRangeCodeIsRejectedNamingRowAndColumn) {
  std::vector<int> values(4 * 5, 1);
  values[2 * 5 + 3] = 8;
  Error e = error_of(i8_codes({4, 5}, values));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(e.detail().find("row 2, column 3"), std::string::npos) << e.what();
  values[2 * 5 + 3] = -9;
  e = error_of(i8_codes({4, 5}, values));
  EXPECT_NE(e.detail().find("-9"), std::string::npos) << e.what();
}

TEST(Int4PackRows, WrongDtypeOrRankIsRejected) {
  EXPECT_EQ(error_of(Tensor::zeros(DType::kI32, {2, 2})).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of(Tensor::zeros(DType::kI8, {4})).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of(Tensor::zeros(DType::kI8, {0, 4})).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeslim::model
