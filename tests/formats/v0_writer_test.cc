// The W8A8 writer: files, tensors (names, order, dtypes, shapes, values), description text, config edits and
// side files, in both the ascendV1 and the MindIE layouts.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "core/error.h"
#include "formats/msmodelslim/description_file.h"
#include "formats/msmodelslim/float_encoding.h"
#include "formats/msmodelslim/v0_writer.h"
#include "formats/msmodelslim/w8a8_tensors.h"
#include "io/json_file.h"
#include "io/safetensors_reader.h"
#include "tiny_quantized_model.h"

namespace moeslim::formats::msmodelslim::testing {
namespace {

namespace fs = std::filesystem;
using moeslim::testing::TempDir;

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::string> file_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Written {
  TempDir root{"export_writer"};
  fs::path model = root.path() / "model";
  fs::path out = root.path() / "out";
  WrittenOutput result;
  Written(Layout format, DType fd, std::int64_t layers = 1,
          std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes) {
    make_input_model_dir(model, fd);
    result = write_tiny_output(model, out, format, fd, layers, max_shard_bytes);
  }
};

TEST(V0Writer, AscendV1DirectoryHoldsShardIndexDescriptionConfigAndSideFiles) {
  const Written w(Layout::kAscendV1, DType::kBF16);
  EXPECT_EQ(file_names(w.out),
            (std::vector<std::string>{"chat_template.jinja", "config.json", "generation_config.json", "merges.txt",
                                      "quant_model_description.json",
                                      "quant_model_weight_w8a8_dynamic-00001-of-00001.safetensors",
                                      "quant_model_weight_w8a8_dynamic.safetensors.index.json", "tokenizer.json",
                                      "tokenizer_config.json"}));
  EXPECT_EQ(w.result.side_files,
            (std::vector<std::string>{"chat_template.jinja", "generation_config.json", "merges.txt", "tokenizer.json",
                                      "tokenizer_config.json"}));
  EXPECT_EQ(read_text(w.out / "tokenizer.json"), read_text(w.model / "tokenizer.json"));
}

void expect_tensors_as_specified(const fs::path& out, DType fd, bool mindie) {
  const std::vector<ExpectedTensor> expected = expected_tensors(fd, mindie);
  const auto index = io::read_ordered_json_file(out / "quant_model_weight_w8a8_dynamic.safetensors.index.json");
  std::vector<std::string> index_order;
  for (const auto& [name, shard] : index["weight_map"].items()) index_order.push_back(name);
  const std::string description_file = mindie ? "quant_model_description_w8a8_dynamic.json"
                                              : "quant_model_description.json";
  const auto description = io::read_ordered_json_file(out / description_file);
  std::vector<std::pair<std::string, std::string>> described;
  for (const auto& [key, value] : description.items()) {
    if (key != "version" && key != "model_quant_type" && key != "kv_quant_type" && key != "fa_quant_type" &&
        key != "group_size") {
      described.emplace_back(key, value.get<std::string>());
    }
  }
  ASSERT_EQ(index_order.size(), expected.size());
  ASSERT_EQ(described.size(), expected.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const ExpectedTensor& e = expected[i];
    EXPECT_EQ(index_order[i], e.name) << "write order at " << i;
    EXPECT_EQ(described[i].first, e.name) << "description order at " << i;
    EXPECT_EQ(described[i].second, e.type) << e.name;
    const auto shard = io::SafetensorsFile::open(out / index["weight_map"][e.name].get<std::string>());
    const io::TensorInfo& info = shard.info(e.name);
    EXPECT_EQ(info.dtype, e.dtype) << e.name << " is " << dtype_name(info.dtype);
    EXPECT_EQ(info.shape, e.shape) << e.name << " is " << shape_to_string(info.shape);
    EXPECT_TRUE(shard.metadata().empty()) << "msModelSlim's shards carry no __metadata__";
    total += info.nbytes();
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), total);
}

TEST(V0Writer, TensorsFollowSpecSection2InBf16) {
  const Written w(Layout::kAscendV1, DType::kBF16);
  expect_tensors_as_specified(w.out, DType::kBF16, false);
}

TEST(V0Writer, TensorsFollowSpecSection2InF16WithInt64DeqScale) {
  const Written w(Layout::kAscendV1, DType::kF16);
  expect_tensors_as_specified(w.out, DType::kF16, false);
}

TEST(V0Writer, MindIELayoutAddsNormModuleCopies) {
  const Written w(Layout::kMindIE, DType::kBF16);
  expect_tensors_as_specified(w.out, DType::kBF16, true);
  EXPECT_FALSE(fs::exists(w.out / "quant_model_description.json"));
}

TEST(V0Writer, WrittenValuesMatchThePipelinesTensors) {
  const Written w(Layout::kAscendV1, DType::kF16);
  const auto shard = io::SafetensorsFile::open(w.out / "quant_model_weight_w8a8_dynamic-00001-of-00001.safetensors");
  const quant::QuantizedLinear q = static_linear("model.layers.0.self_attn.q_proj", kQOut, kHidden, true, DType::kF16, 1);
  const std::string p = "model.layers.0.self_attn.q_proj.";
  const Tensor weight = shard.tensor(p + "weight");
  EXPECT_EQ(std::memcmp(weight.bytes(), q.weight.bytes(), q.weight.nbytes()), 0);
  const Tensor bias = shard.tensor(p + "bias").to_f32();
  const Tensor scale = shard.tensor(p + "weight_scale").to_f32();
  const Tensor offset = shard.tensor(p + "weight_offset").to_f32();
  const Tensor quant_bias = shard.tensor(p + "quant_bias");
  const Tensor deq = shard.tensor(p + "deq_scale");
  for (std::int64_t n = 0; n < kQOut; ++n) {
    EXPECT_EQ(bias.data<float>()[n], q.bias.data<float>()[n]);
    EXPECT_EQ(scale.data<float>()[n], q.weight_scale.data<float>()[n]);
    EXPECT_EQ(offset.data<float>()[n], 0.0f);
    EXPECT_EQ(quant_bias.data<std::int32_t>()[n], q.quant_bias.data<std::int32_t>()[n]);
    // fp16 model: the float32 bits, sign-extended into an int64.
    std::uint32_t bits;
    std::memcpy(&bits, &q.deq_scale.data<float>()[n], 4);
    EXPECT_EQ(deq.data<std::int64_t>()[n], static_cast<std::int64_t>(static_cast<std::int32_t>(bits)));
  }
  EXPECT_EQ(shard.tensor(p + "input_scale").to_f32().data<float>()[0], q.input_scale.data<float>()[0]);
  EXPECT_EQ(shard.tensor(p + "input_offset").to_f32().data<float>()[0], q.input_offset.data<float>()[0]);
  // A norm given without a bias gets a zero one.
  const Tensor norm_bias = shard.tensor("model.norm.bias").to_f32();
  for (std::size_t i = 0; i < norm_bias.numel(); ++i) EXPECT_EQ(norm_bias.data<float>()[i], 0.0f);
}

TEST(V0Writer, DescriptionTextHasPythonLayoutAndKeyOrder) {
  const Written w(Layout::kAscendV1, DType::kBF16);
  const std::string text = read_text(w.out / "quant_model_description.json");
  EXPECT_EQ(text.rfind("{\n    \"version\": \"1.0.0\",\n    \"model_quant_type\": \"W8A8\",\n"
                       "    \"model.embed_tokens.weight\": \"FLOAT\",\n"
                       "    \"model.layers.0.self_attn.q_proj.weight\": \"W8A8\",\n"
                       "    \"model.layers.0.self_attn.q_proj.bias\": \"FLOAT\",\n",
                       0),
            0u)
      << text.substr(0, 300);
  const std::string tail =
      "    \"lm_head.weight\": \"FLOAT\",\n    \"kv_quant_type\": null,\n    \"fa_quant_type\": null,\n"
      "    \"group_size\": 0\n}";
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail);
}

TEST(V0Writer, MindIEDescriptionHasNoVersionAndNoTrailingKeys) {
  const Written w(Layout::kMindIE, DType::kBF16);
  const std::string text = read_text(w.out / "quant_model_description_w8a8_dynamic.json");
  EXPECT_EQ(text.rfind("{\n    \"model_quant_type\": \"W8A8\",\n    \"model.embed_tokens.weight\": \"FLOAT\",\n", 0), 0u);
  EXPECT_NE(text.find("    \"model.layers.0.self_attn.q_norm.bias\": \"FLOAT\",\n"
                      "    \"model.layers.0.self_attn.q_norm.module.weight\": \"W8A8\",\n"
                      "    \"model.layers.0.self_attn.q_norm.module.bias\": \"W8A8\",\n"),
            std::string::npos);
  const std::string tail = "    \"lm_head.weight\": \"FLOAT\"\n}";
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail);
  EXPECT_EQ(text.find("version"), std::string::npos);
  EXPECT_EQ(text.find("group_size"), std::string::npos);
}

TEST(V0Writer, RenderDescriptionMatchesPythonJsonDumpIndent4) {
  EXPECT_EQ(render_description({{"version", "1.0.0"}}, {{"a.weight", "FLOAT"}},
                               {{"metadata", nlohmann::ordered_json{{"rot", true}}}, {"optional", nlohmann::ordered_json::object()}}),
            "{\n    \"version\": \"1.0.0\",\n    \"a.weight\": \"FLOAT\",\n    \"metadata\": {\n        \"rot\": true\n"
            "    },\n    \"optional\": {}\n}");
  EXPECT_EQ(render_description({}, {}, {}), "{}");
}

TEST(V0Writer, ConfigGainsQuantizeAndTheWrittenLayerCount) {
  const Written w(Layout::kAscendV1, DType::kBF16, /*layers=*/1);
  const std::string text = read_text(w.out / "config.json");
  EXPECT_EQ(text.rfind("{\n    \"architectures\": [\n        \"Qwen3MoeForCausalLM\"\n    ],\n", 0), 0u) << text;
  const auto config = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [k, v] : config.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"architectures", "model_type", "hidden_size", "num_hidden_layers",
                                            "num_experts", "rms_norm_eps", "rope_theta", "torch_dtype", "vocab_size",
                                            "quantize"}));
  EXPECT_EQ(config["quantize"], "w8a8_dynamic");
  EXPECT_EQ(config["num_hidden_layers"], 1);  // spec §6: moeslim records the layers it wrote
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_FALSE(config.contains("quantization_config"));
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-06,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rope_theta\": 1000000.0,"), std::string::npos) << text;
}

TEST(V0Writer, ConfigKeepsTheLayerCountWhenAllLayersAreWritten) {
  const Written w(Layout::kAscendV1, DType::kBF16, /*layers=*/0);
  EXPECT_EQ(nlohmann::json::parse(read_text(w.out / "config.json"))["num_hidden_layers"], 2);
}

TEST(V0Writer, MindIEConfigGainsQuantizationConfig) {
  const Written w(Layout::kMindIE, DType::kBF16);
  const auto config = nlohmann::ordered_json::parse(read_text(w.out / "config.json"));
  EXPECT_EQ(config["quantize"], "w8a8_dynamic");
  EXPECT_EQ(config["quantization_config"].dump(), R"({"kv_quant_type":null,"fa_quant_type":null,"group_size":0})");
}

// vLLM-Ascend takes a config.json quantization_config as the quantization description: ascendV1 drops an
// input's, the MindIE layout (which vLLM-Ascend does not load) replaces it with its own.
TEST(V0Writer, AnInputQuantizationConfigIsDroppedInAscendV1AndReplacedInMindIE) {
  for (const Layout layout : {Layout::kAscendV1, Layout::kMindIE}) {
    TempDir root("export_qconfig");
    const fs::path model = root.path() / "model", out = root.path() / "out";
    make_input_model_dir(model, DType::kBF16);
    auto config = nlohmann::ordered_json::parse(read_text(model / "config.json"));
    config["quantization_config"] = {{"quant_method", "fp8"}};
    std::ofstream(model / "config.json") << config.dump(4);
    write_tiny_output(model, out, layout, DType::kBF16, 1, io::kDefaultMaxShardBytes);
    const auto written = nlohmann::ordered_json::parse(read_text(out / "config.json"));
    if (layout == Layout::kAscendV1) {
      EXPECT_FALSE(written.contains("quantization_config")) << written.dump();
    } else {
      EXPECT_EQ(written["quantization_config"].dump(), R"({"kv_quant_type":null,"fa_quant_type":null,"group_size":0})");
    }
  }
}

TEST(V0Writer, SmallShardLimitSplitsIntoNumberedShards) {
  const Written w(Layout::kAscendV1, DType::kBF16, 1, /*max_shard_bytes=*/512);
  const std::size_t n = w.result.shards.shard_names.size();
  ASSERT_GT(n, 2u);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(w.result.shards.shard_names[i],
              fmt::format("quant_model_weight_w8a8_dynamic-{:05}-of-{:05}.safetensors", i + 1, n));
    EXPECT_TRUE(fs::exists(w.out / w.result.shards.shard_names[i]));
  }
  expect_tensors_as_specified(w.out, DType::kBF16, false);
}

TEST(V0Writer, LayerCountAboveTheInputsIsRejected) {
  TempDir root("export_layers");
  make_input_model_dir(root.path() / "model", DType::kBF16);
  try {
    write_tiny_output(root.path() / "model", root.path() / "out", Layout::kAscendV1, DType::kBF16, 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "num_hidden_layers");
  }
}

// The values deq_scale and quant_bias were computed from must be written unchanged.
TEST(W8A8Tensors, ScaleNotRepresentableInTheModelDtypeIsRejectedNamingIt) {
  quant::QuantizedLinear l = static_linear("model.layers.0.self_attn.q_proj", 4, 8, true, DType::kBF16, 1);
  l.weight_scale.mutable_data<float>()[2] = 0.1f;  // not a bf16 value
  try {
    w8a8_linear_tensors(l, DType::kBF16);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj.weight_scale");
    EXPECT_NE(e.detail().find("element 2"), std::string::npos) << e.what();
  }
}

TEST(W8A8Tensors, WrongFieldDtypesAndShapesAreRejected) {
  quant::QuantizedLinear l = static_linear("model.layers.0.self_attn.k_proj", 4, 8, false, DType::kBF16, 1);
  l.quant_bias = Tensor::zeros(DType::kI32, {3});
  EXPECT_THROW(w8a8_linear_tensors(l, DType::kBF16), Error);
  quant::QuantizedLinear f = dynamic_linear("model.layers.0.mlp.experts.0.up_proj", 4, 8, 1);
  f.weight = f.weight.to_f32();
  try {
    w8a8_linear_tensors(f, DType::kBF16);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.up_proj.weight");
  }
  quant::QuantizedLinear w4 = dynamic_linear("model.layers.0.mlp.experts.0.down_proj", 4, 8, 1);
  w4.scheme = quant::QuantScheme::kW4A8Dynamic;
  try {
    w8a8_linear_tensors(w4, DType::kBF16);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

TEST(FloatEncoding, DeqScaleInt64HoldsSignExtendedFloatBits) {
  const Tensor deq = f32_tensor({2}, {0.5f, -2.0f});
  const Tensor enc = encode_deq_scale(deq, DType::kF16);
  ASSERT_EQ(enc.dtype(), DType::kI64);
  EXPECT_EQ(enc.data<std::int64_t>()[0], 0x3f000000);
  EXPECT_EQ(enc.data<std::int64_t>()[1], static_cast<std::int64_t>(static_cast<std::int32_t>(0xc0000000u)));
  EXPECT_EQ(decode_int64_deq_scale(enc.data<std::int64_t>()[1]), -2.0f);
  EXPECT_FALSE(decode_int64_deq_scale(std::int64_t{1} << 40).has_value());
  EXPECT_EQ(encode_deq_scale(deq, DType::kBF16).dtype(), DType::kF32);
}

}  // namespace
}  // namespace moeslim::formats::msmodelslim::testing
