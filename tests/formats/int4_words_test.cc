// compressed-tensors' pack-quantized int4 words (docs/compressed-tensors.md §2.3): weights eight columns per
// int32 word, column 0 in the lowest nibble, each code stored as q + 8; zero points eight output rows per word.
// Hand-worked words, round trips, and the errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "formats/compressed_tensors/int4_words.h"
#include "tiny_quantized_model.h"

namespace moeslim::formats::compressed_tensors {
namespace {

Tensor i8(std::int64_t rows, std::int64_t cols, const std::vector<int>& v) {
  return msmodelslim::testing::i8_codes({rows, cols}, v);
}

std::vector<std::int32_t> words(const Tensor& t) {
  return {t.data<std::int32_t>(), t.data<std::int32_t>() + t.numel()};
}

std::vector<int> ints(const Tensor& t) { return {t.data<std::int8_t>(), t.data<std::int8_t>() + t.numel()}; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Int4Words, ColumnZeroIsTheLowestNibbleAndCodesAreStoredPlusEight) {
  // Row 0: −8 … −1 → nibbles 0 … 7 → 0x76543210. Row 1: 0 … 7 → nibbles 8 … 15 → 0xFEDCBA98 (negative as int32).
  // Column 8 opens a second word padded with 0 nibbles: 7 → 0xF, −8 → 0x0.
  const Tensor codes = i8(2, 9, {-8, -7, -6, -5, -4, -3, -2, -1, 7,  //
                                 0, 1, 2, 3, 4, 5, 6, 7, -8});
  const Tensor packed = pack_int4_columns(codes);
  ASSERT_EQ(packed.shape(), (Shape{2, 2}));
  EXPECT_EQ(words(packed), (std::vector<std::int32_t>{0x76543210, 0xF, static_cast<std::int32_t>(0xFEDCBA98u), 0}));
  EXPECT_EQ(ints(unpack_int4_columns(packed, 9)), ints(codes));
}

TEST(Int4Words, ZeroPointsArePackedAlongTheRows) {
  // 9 rows × 2 groups. Group 0: rows 0–7 are −8 … −1 → 0x76543210, row 8 is 7 → 0xF. Group 1: all 0 → 0x88888888
  // and, for row 8 alone, 0x8.
  std::vector<int> z;
  for (int r = 0; r < 9; ++r) {
    z.push_back(r < 8 ? r - 8 : 7);
    z.push_back(0);
  }
  const Tensor zp = i8(9, 2, z);
  const Tensor packed = pack_int4_rows_to_words(zp);
  ASSERT_EQ(packed.shape(), (Shape{2, 2}));
  EXPECT_EQ(words(packed),
            (std::vector<std::int32_t>{0x76543210, static_cast<std::int32_t>(0x88888888u), 0xF, 0x8}));
  EXPECT_EQ(ints(unpack_int4_rows_from_words(packed, 9)), z);
}

TEST(Int4Words, RoundTripsForAnyShape) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> code(-8, 7);
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 1}, {3, 8}, {5, 17}, {16, 128}}) {
    std::vector<int> v(static_cast<std::size_t>(rows * cols));
    for (int& x : v) x = code(rng);
    const Tensor t = i8(rows, cols, v);
    EXPECT_EQ(ints(unpack_int4_columns(pack_int4_columns(t), cols)), v) << rows << "x" << cols;
    EXPECT_EQ(ints(unpack_int4_rows_from_words(pack_int4_rows_to_words(t), rows)), v) << rows << "x" << cols;
  }
}

TEST(Int4Words, ErrorsNameWhatIsWrong) {
  EXPECT_NE(error_of([] { pack_int4_columns(i8(2, 3, {0, 0, 0, 0, 8, 0})); }).find("int4 code 8 at [1, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([] { pack_int4_rows_to_words(i8(2, 3, {0, 0, 0, 0, -9, 0})); }).find("int4 code -9 at [1, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([] { pack_int4_columns(Tensor::zeros(DType::kF32, {2, 2})); }).find("2-D I8"), std::string::npos);
  const Tensor one_word = pack_int4_columns(i8(1, 8, {0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_NE(error_of([&] { unpack_int4_columns(one_word, 9); }).find("need 2"), std::string::npos);
  // Three columns in a word whose fourth nibble is not padding.
  EXPECT_NE(error_of([&] { unpack_int4_columns(one_word, 3); }).find("padding nibble 3"), std::string::npos);
}

}  // namespace
}  // namespace moeslim::formats::compressed_tensors
