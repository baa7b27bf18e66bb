#include "core/tensor.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/half.h"

namespace moeslim {
namespace {

TEST(Tensor, ZerosOwnsAlignedMemory) {
  Tensor t = Tensor::zeros(DType::kF32, {3, 5});
  EXPECT_EQ(t.numel(), 15u);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_FALSE(t.is_view());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.bytes()) % 64, 0u);
  for (float v : t.span<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ViewKeepsOwnerAliveAndIsReadOnly) {
  auto buffer = std::make_shared<std::vector<std::uint16_t>>(std::vector<std::uint16_t>{
      f32_to_bf16(1.0f), f32_to_bf16(-2.0f), f32_to_bf16(0.5f), f32_to_bf16(3.0f)});
  Tensor v = Tensor::view(DType::kBF16, {2, 2}, buffer->data(), buffer);
  std::weak_ptr<std::vector<std::uint16_t>> weak = buffer;
  buffer.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_TRUE(v.is_view());
  EXPECT_THROW(v.mutable_bytes(), Error);
  Tensor f = v.to_f32();
  EXPECT_EQ(f.data<float>()[1], -2.0f);
  EXPECT_EQ(f.data<float>()[3], 3.0f);
  v = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(Tensor, ShapeChecks) {
  EXPECT_THROW(shape_numel({2, -1}), Error);
  EXPECT_THROW(shape_numel({1LL << 40, 1LL << 40}), Error);
  EXPECT_EQ(shape_numel({}), 1u);  // a scalar
  EXPECT_EQ(shape_numel({4, 0}), 0u);
  EXPECT_EQ(shape_to_string({4096, 2048}), "[4096, 2048]");
  Tensor t = Tensor::zeros(DType::kI8, {6});
  EXPECT_EQ(t.reshaped({2, 3}).dim(1), 3);
  EXPECT_THROW(t.reshaped({4, 2}), Error);
}

TEST(Tensor, CloneIsDeep) {
  Tensor t = Tensor::zeros(DType::kI32, {4});
  t.mutable_data<std::int32_t>()[2] = 7;
  Tensor c = t.clone();
  t.mutable_data<std::int32_t>()[2] = 9;
  EXPECT_EQ(c.data<std::int32_t>()[2], 7);
}

}  // namespace
}  // namespace moeslim
