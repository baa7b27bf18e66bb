#include "core/error.h"

#include <gtest/gtest.h>

#include "core/dtype.h"

namespace moeslim {
namespace {

TEST(Error, MessageNamesFileAndField) {
  Error e(ErrorCode::kFormat, "byte length 10 does not match shape [2, 3] x BF16 = 12", "/m/model.safetensors",
          "model.norm.weight");
  EXPECT_STREQ(e.what(),
               "/m/model.safetensors: 'model.norm.weight': byte length 10 does not match shape [2, 3] x BF16 = 12");
  EXPECT_EQ(e.code(), ErrorCode::kFormat);
  EXPECT_EQ(e.field(), "model.norm.weight");
}

TEST(Error, RethrowAddsFileOnlyWhenMissing) {
  try {
    rethrow_with_file(Error(ErrorCode::kIo, "short read"), "a.bin");
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "a.bin");
  }
  try {
    rethrow_with_file(Error(ErrorCode::kIo, "short read", "b.bin"), "a.bin");
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "b.bin");
  }
}

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(dtype_from_name("BF16"), DType::kBF16);
  EXPECT_EQ(dtype_from_name("I8"), DType::kI8);
  EXPECT_FALSE(dtype_from_name("F64").has_value());
  EXPECT_FALSE(dtype_from_name("bf16").has_value());  // safetensors names are case-sensitive
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
}

}  // namespace
}  // namespace moeslim
