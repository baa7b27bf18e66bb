// The W4A8 layout's per-module tensors (spec §5): names, order, dtypes, shapes, the packed weight and the
// scale_bias values, checked against numbers worked out by hand.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/msmodelslim/w4a8_tensors.h"
#include "model/quantized_linear.h"
#include "tiny_quantized_model.h"
#include "common/module_by_name.h"

namespace moeslim::formats::msmodelslim::testing {
namespace {

std::vector<float> floats(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

// The hand case: 2 x 32 codes.
//   row 0: q[0,k] = floor(k/2) - 8  → -8,-8,-7,-7,...,7,7; chunk j of 2 sums to 2(j - 8); the row sums to -16.
//   row 1: q[1,k] = 3 (even k), -1 (odd k); every chunk of 2 sums to 2; the row sums to 32.
// Scales 0.5 and 0.25.
quant::QuantizedLinear hand_linear(const std::string& name) {
  std::vector<int> codes(64);
  for (int k = 0; k < 32; ++k) {
    codes[k] = k / 2 - 8;
    codes[32 + k] = k % 2 == 0 ? 3 : -1;
  }
  quant::QuantizedLinear l;
  l.module = moeslim::testing::module_id(name);
  l.scheme = quant::QuantScheme::kW4A8Dynamic;
  l.weight = i8_codes({2, 32}, codes);
  l.weight_scale = f32_tensor({2}, {0.5f, 0.25f});
  return l;
}

Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no moeslim::Error";
  return Error(ErrorCode::kInternal, "none");
}

TEST(W4A8ScaleBias, UpProjIsEightTimesTheRowSumOfCodesTimesScale) {
  const auto tensors = w4a8_linear_tensors(hand_linear("model.layers.0.mlp.experts.3.up_proj"));
  ASSERT_EQ(tensors.size(), 4u);
  const NamedTensor& sb = tensors[3];
  EXPECT_EQ(sb.name, "model.layers.0.mlp.experts.3.up_proj.scale_bias");
  EXPECT_EQ(sb.tensor.dtype(), DType::kF32);
  EXPECT_EQ(sb.tensor.shape(), (Shape{2, 1}));
  // 8 · 0.5 · (-16) = -64;  8 · 0.25 · 32 = 64.
  EXPECT_EQ(floats(sb.tensor), (std::vector<float>{-64.0f, 64.0f}));
}

TEST(W4A8ScaleBias, DownProjSplitsEachRowIntoSixteenChunks) {
  const auto tensors = w4a8_linear_tensors(hand_linear("model.layers.0.mlp.experts.3.down_proj"));
  const NamedTensor& sb = tensors.at(3);
  EXPECT_EQ(sb.name, "model.layers.0.mlp.experts.3.down_proj.scale_bias");
  EXPECT_EQ(sb.tensor.shape(), (Shape{2, 16}));
  // Row 0, chunk j: 8 · 0.5 · 2(j - 8) = 8(j - 8). Row 1: 8 · 0.25 · 2 = 4 in every chunk.
  const std::vector<float> expected = {-64, -56, -48, -40, -32, -24, -16, -8, 0, 8, 16, 24, 32, 40, 48, 56,
                                       4,   4,   4,   4,   4,   4,   4,   4,  4, 4, 4,  4,  4,  4,  4,  4};
  EXPECT_EQ(floats(sb.tensor), expected);
}

TEST(W4A8ScaleBias, IsTheExactSumRoundedOnce) {
  // 0.1f is not a short binary fraction: 8 · 0.1f · 3 must be the double product rounded once to float.
  const Tensor sb = w4a8_scale_bias(i8_codes({1, 2}, {1, 2}), f32_tensor({1}, {0.1f}), 1, "x.scale_bias");
  EXPECT_EQ(sb.data<float>()[0], static_cast<float>(24.0 * static_cast<double>(0.1f)));
}

TEST(W4A8ScaleBias, DownProjWidthMustSplitIntoSixteen) {
  quant::QuantizedLinear l = hand_linear("model.layers.0.mlp.experts.0.down_proj");
  l.weight = i8_codes({2, 24}, std::vector<int>(48, 1));
  const Error e = error_of([&] { w4a8_linear_tensors(l); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.down_proj.scale_bias");
  EXPECT_EQ(scale_bias_columns("model.layers.0.mlp.experts.0.down_proj"), 16);
  EXPECT_EQ(scale_bias_columns("model.layers.0.mlp.gate_proj"), 1);
  EXPECT_EQ(scale_bias_columns("model.layers.0.mlp.experts.0.up_proj"), 1);
  EXPECT_FALSE(scale_bias_columns("model.layers.0.self_attn.o_proj").has_value());
  EXPECT_FALSE(scale_bias_columns("model.layers.0.mlp.experts.0.down_projection").has_value());
}

TEST(W4A8Tensors, Int4LinearWritesPackedWeightFloat32ScalesZeroOffsetsAndScaleBias) {
  const quant::QuantizedLinear l = hand_linear("model.layers.1.mlp.experts.0.gate_proj");
  const auto tensors = w4a8_linear_tensors(l);
  const std::string p = model::hf_module_name(l.module) + ".";
  ASSERT_EQ(tensors.size(), 4u);
  const std::vector<std::string> names = {p + "weight", p + "weight_scale", p + "weight_offset", p + "scale_bias"};
  const std::vector<DType> dtypes = {DType::kI8, DType::kF32, DType::kF32, DType::kF32};
  const std::vector<Shape> shapes = {{1, 32}, {2, 1}, {2, 1}, {2, 1}};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(tensors[i].name, names[i]);
    EXPECT_EQ(tensors[i].type, "W4A8_DYNAMIC");
    EXPECT_EQ(tensors[i].tensor.dtype(), dtypes[i]) << names[i];
    EXPECT_EQ(tensors[i].tensor.shape(), shapes[i]) << names[i];
  }
  // Column 0: q[0,0] = -8 (low nibble 0x8), q[1,0] = 3 (high nibble) → 0x38; column 1: -8, -1 → 0xF8.
  EXPECT_EQ(tensors[0].tensor.data<std::uint8_t>()[0], 0x38);
  EXPECT_EQ(tensors[0].tensor.data<std::uint8_t>()[1], 0xF8);
  const Tensor unpacked = model::unpack_int4_rows(tensors[0].tensor);
  EXPECT_EQ(std::memcmp(unpacked.bytes(), l.weight.bytes(), l.weight.nbytes()), 0);
  EXPECT_EQ(floats(tensors[1].tensor), (std::vector<float>{0.5f, 0.25f}));
  EXPECT_EQ(floats(tensors[2].tensor), (std::vector<float>{0.0f, 0.0f}));
}

TEST(W4A8Tensors, Int8DynamicLinearKeepsFullRangeCodesWithFloat32Scales) {
  quant::QuantizedLinear l = dynamic_linear("model.layers.0.self_attn.q_proj", 4, 8, 1);
  l.weight.mutable_data<std::int8_t>()[0] = -128;  // v1 codes use all of [-128, 127]
  const auto tensors = w4a8_linear_tensors(l);
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].name, model::hf_module_name(l.module) + ".weight");
  EXPECT_EQ(tensors[0].tensor.shape(), (Shape{4, 8}));
  EXPECT_EQ(tensors[0].tensor.data<std::int8_t>()[0], -128);
  EXPECT_EQ(tensors[1].name, model::hf_module_name(l.module) + ".weight_scale");
  EXPECT_EQ(tensors[1].tensor.dtype(), DType::kF32);
  EXPECT_EQ(tensors[1].tensor.shape(), (Shape{4, 1}));
  EXPECT_EQ(floats(tensors[1].tensor), floats(l.weight_scale));
  EXPECT_EQ(tensors[2].name, model::hf_module_name(l.module) + ".weight_offset");
  EXPECT_EQ(tensors[2].tensor.dtype(), DType::kF32);
  for (const NamedTensor& t : tensors) EXPECT_EQ(t.type, "W8A8_DYNAMIC");
}

TEST(W4A8Tensors, BadInputsAreRejectedNamingTheTensor) {
  quant::QuantizedLinear odd = hand_linear("model.layers.0.mlp.experts.0.up_proj");
  odd.weight = i8_codes({3, 32}, std::vector<int>(96, 1));
  odd.weight_scale = f32_tensor({3}, {1, 1, 1});
  Error e = error_of([&] { w4a8_linear_tensors(odd); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.up_proj.weight");

  quant::QuantizedLinear wide = hand_linear("model.layers.0.mlp.experts.0.up_proj");
  wide.weight.mutable_data<std::int8_t>()[33] = 9;
  e = error_of([&] { w4a8_linear_tensors(wide); });
  EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.up_proj.weight");
  EXPECT_NE(e.detail().find("row 1, column 1"), std::string::npos) << e.what();

  quant::QuantizedLinear biased = hand_linear("model.layers.0.mlp.experts.0.up_proj");
  biased.bias = f32_tensor({2}, {1, 1});
  EXPECT_EQ(error_of([&] { w4a8_linear_tensors(biased); }).field(), "model.layers.0.mlp.experts.0.up_proj.bias");

  quant::QuantizedLinear zero_scale = hand_linear("model.layers.0.mlp.experts.0.up_proj");
  zero_scale.weight_scale.mutable_data<float>()[1] = 0.0f;
  e = error_of([&] { w4a8_linear_tensors(zero_scale); });
  EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.up_proj.weight_scale");
  EXPECT_NE(e.detail().find("row 1"), std::string::npos) << e.what();

  quant::QuantizedLinear attention = hand_linear("model.layers.0.self_attn.o_proj");
  e = error_of([&] { w4a8_linear_tensors(attention); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.o_proj.weight");

  quant::QuantizedLinear static_linear = hand_linear("model.layers.0.self_attn.q_proj");
  static_linear.scheme = quant::QuantScheme::kW8A8;
  EXPECT_EQ(error_of([&] { w4a8_linear_tensors(static_linear); }).code(), ErrorCode::kUnsupported);
}

TEST(W4A8Tensors, NormsWriteTheirWeightOnly) {
  const auto tensors = w4a8_norm_tensors(norm("model.layers.0.input_layernorm", kHidden, false), DType::kBF16);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].name, "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(tensors[0].type, "FLOAT");
  EXPECT_EQ(tensors[0].tensor.dtype(), DType::kBF16);
  EXPECT_EQ(tensors[0].tensor.shape(), (Shape{kHidden}));

  quant::NormTensors zero_bias = norm("model.norm", kHidden, false);
  zero_bias.bias = Tensor::zeros(DType::kF32, {kHidden});
  EXPECT_EQ(w4a8_norm_tensors(zero_bias, DType::kBF16).size(), 1u);  // nothing is lost by dropping it

  const quant::NormTensors biased = norm("model.layers.0.post_attention_layernorm", kHidden, true);
  const Error e = error_of([&] { w4a8_norm_tensors(biased, DType::kBF16); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.field(), "model.layers.0.post_attention_layernorm.bias");
}

}  // namespace
}  // namespace moeslim::formats::msmodelslim::testing
