// The W4A8 (v1, ascendv1_saver) writer end to end: a synthetic tiny Qwen3-MoE is quantized here with plain
// per-channel min/max (int8 attention, int4 experts), written, and the output checked three ways: its files
// and JSON as spec §5 lays them out, `inspect` (which must accept it, and reject tampered copies naming the
// tensor), and the evaluator, which must load it and compute what a float model holding the dequantized
// weights computes.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "core/error.h"
#include "core/half.h"
#include "formats/msmodelslim/reader.h"
#include "formats/msmodelslim/inspect.h"
#include "formats/msmodelslim/v1_writer.h"
#include "io/checkpoint.h"
#include "io/json_file.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/synthetic_checkpoint.h"
#include "tiny_quantized_model.h"
#include "common/module_by_name.h"

namespace moeslim::formats::msmodelslim::testing {
namespace {

namespace fs = std::filesystem;
using moeslim::testing::TempDir;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

constexpr std::int64_t kModelLayers = 2;
constexpr const char* kIndexFile = "quant_model_weights.safetensors.index.json";
constexpr const char* kDescription = "quant_model_description.json";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Per-output-row symmetric quantization: s = max|w| / qmax, q = clamp(rne(w / s), qmin, qmax). Also returns
// q·s, the float weight the quantized linear stands for.
struct RowQuantized {
  Tensor codes;        // I8 [out, in]
  Tensor scale;        // F32 [out]
  Tensor dequantized;  // F32 [out, in]
};

RowQuantized quantize_rows(const Tensor& weight, int qmin, int qmax) {
  const Tensor w = weight.to_f32();
  const std::int64_t out = w.dim(0), in = w.dim(1);
  RowQuantized r{Tensor::zeros(DType::kI8, {out, in}), Tensor::zeros(DType::kF32, {out}),
                 Tensor::zeros(DType::kF32, {out, in})};
  for (std::int64_t n = 0; n < out; ++n) {
    const float* row = w.data<float>() + n * in;
    float amax = 0;
    for (std::int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float s = std::max(amax / static_cast<float>(qmax), 1e-12f);
    r.scale.mutable_data<float>()[n] = s;
    for (std::int64_t k = 0; k < in; ++k) {
      const float q = std::clamp(std::nearbyint(row[k] / s), static_cast<float>(qmin), static_cast<float>(qmax));
      r.codes.mutable_data<std::int8_t>()[n * in + k] = static_cast<std::int8_t>(q);
      r.dequantized.mutable_data<float>()[n * in + k] = q * s;
    }
  }
  return r;
}

// The input model: a synthetic "tiny" checkpoint (hidden 256, 16 experts of width 128, vocab 4096) whose
// config.json also carries a quantization_config, which the W4A8 layout must drop.
void make_input_model(const fs::path& dir) {
  model::SynthOptions o;
  o.preset = "tiny";
  o.layers = kModelLayers;
  o.seed = 7;
  o.out_dir = dir;
  model::write_synthetic_checkpoint(o);
  nlohmann::ordered_json config = io::read_ordered_json_file(dir / "config.json");
  config["quantization_config"] = {{"quant_method", "fp8"}};
  write_file(dir / "config.json", config.dump(2));
  write_file(dir / "merges.txt", "a b\n");
}

model::ModelConfig input_config(const fs::path& dir) {
  nlohmann::json j = io::read_json_file(dir / "config.json");
  j.erase("quantization_config");  // the float model does not use it
  return model::ModelConfig::from_json(j, (dir / "config.json").string());
}

// Writes the first `layers` decoder layers (0 = all) in module order, as the v1 pipeline would: attention
// W8A8_DYNAMIC, experts W4A8_DYNAMIC, router / embedding / lm_head FLOAT, norms without a bias. `dequantized`
// receives every written module as a float checkpoint would hold it (q·s for the quantized linears).
WrittenOutput write_v1_output(const fs::path& model_dir, const fs::path& out, std::int64_t layers,
                                  std::uint64_t max_shard_bytes, const nlohmann::ordered_json& metadata,
                                  NamedTensors* dequantized) {
  const model::ModelConfig config = input_config(model_dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(model_dir);
  V1Writer writer(out, DType::kBF16, max_shard_bytes);
  for (const model::ExpectedTensor& e : model::expected_tensors(config)) {
    if (layers > 0 && e.name.rfind("model.layers.", 0) == 0 && std::stoll(e.name.substr(13)) >= layers) continue;
    const std::string module = e.name.substr(0, e.name.size() - std::string(".weight").size());
    const Tensor weight = checkpoint.tensor(e.name);
    Tensor as_float = weight;
    if (ends_with(module, "norm")) {
      writer.add_norm({moeslim::testing::module_id(module), weight.to_f32(), Tensor()});
    } else if (module.find(".self_attn.") != std::string::npos || module.find(".mlp.experts.") != std::string::npos) {
      const bool int4 = module.find(".mlp.experts.") != std::string::npos;
      const RowQuantized q = int4 ? quantize_rows(weight, -8, 7) : quantize_rows(weight, -128, 127);
      quant::QuantizedLinear l;
      l.module = moeslim::testing::module_id(module);
      l.scheme = int4 ? quant::QuantScheme::kW4A8Dynamic : quant::QuantScheme::kW8A8Dynamic;
      l.weight = q.codes;
      l.weight_scale = q.scale;
      writer.add_linear(l);
      as_float = q.dequantized;
    } else if (ends_with(module, "mlp.gate")) {
      quant::QuantizedLinear router;
      router.module = moeslim::testing::module_id(module);
      router.weight = weight;
      writer.add_linear(router);
    } else {
      writer.add_float(e.name, weight);
    }
    if (dequantized) dequantized->emplace_back(e.name, as_float);
  }
  return writer.finish(model_dir, layers, metadata);
}

// The written model, once for the suite: the output directory and a float checkpoint of the same weights.
struct WrittenModel {
  TempDir root{"export_v1"};
  fs::path model = root.path() / "model";
  fs::path out = root.path() / "out";
  fs::path dequantized = root.path() / "dequantized";
  WrittenOutput result;

  WrittenModel() {
    make_input_model(model);
    NamedTensors float_weights;
    result = write_v1_output(model, out, 0, io::kDefaultMaxShardBytes, nlohmann::ordered_json::object(),
                             &float_weights);
    fs::create_directories(dequantized);
    io::write_safetensors(dequantized / "model.safetensors", float_weights);
    nlohmann::json config = io::read_json_file(model / "config.json");
    config.erase("quantization_config");
    write_file(dequantized / "config.json", config.dump(2));
  }
};


class V1WriterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { written_ = new WrittenModel(); }
  static void TearDownTestSuite() {
    delete written_;
    written_ = nullptr;
  }
  static const WrittenModel& written() { return *written_; }

  // A private copy of the output to tamper with.
  struct Copy {
    TempDir root{"export_v1_tampered"};
    fs::path out = root.path() / "out";
    explicit Copy(const fs::path& from) { fs::copy(from, out, fs::copy_options::recursive); }

    fs::path shard_of(const std::string& tensor) const {
      return out / io::read_json_file(out / kIndexFile)["weight_map"][tensor].get<std::string>();
    }
    // Rewrites the shard holding `name` with `edit` applied to that tensor, and keeps the index's total_size
    // right so that only the edit is wrong.
    void edit_tensor(const std::string& name, const std::function<void(Tensor&)>& edit) {
      const fs::path path = shard_of(name);
      NamedTensors tensors;
      {
        const auto file = io::SafetensorsFile::open(path);
        for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.tensor(info.name).clone());
      }
      std::int64_t size_change = 0;
      for (auto& [n, t] : tensors) {
        if (n != name) continue;
        const auto before = static_cast<std::int64_t>(t.nbytes());
        edit(t);
        size_change = static_cast<std::int64_t>(t.nbytes()) - before;
      }
      io::write_safetensors(path, tensors);
      nlohmann::ordered_json index = io::read_ordered_json_file(out / kIndexFile);
      index["metadata"]["total_size"] = index["metadata"]["total_size"].get<std::int64_t>() + size_change;
      write_file(out / kIndexFile, index.dump(2));
    }
  };

 private:
  static WrittenModel* written_;
};

WrittenModel* V1WriterTest::written_ = nullptr;

TEST_F(V1WriterTest, DirectoryHoldsTheV1ShardsIndexDescriptionConfigAndSideFiles) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(written().out)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "generation_config.json", "merges.txt", kDescription,
                                             "quant_model_weights-00001-of-00001.safetensors", kIndexFile}));
  EXPECT_EQ(written().result.side_files, (std::vector<std::string>{"generation_config.json", "merges.txt"}));
}

TEST_F(V1WriterTest, DescriptionListsTensorsInWriteOrderThenTheV1HeaderKeys) {
  const std::string text = read_text(written().out / kDescription);
  EXPECT_EQ(text.rfind("{\n    \"model.embed_tokens.weight\": \"FLOAT\",\n", 0), 0u) << text.substr(0, 200);
  const std::string tail =
      "    \"lm_head.weight\": \"FLOAT\",\n    \"version\": \"1.0.0\",\n    \"model_quant_type\": \"W8A8_DYNAMIC\",\n"
      "    \"metadata\": {},\n    \"group_size\": 0,\n    \"optional\": {}\n}";
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail);

  // Entries in the index's order, one per stored tensor, typed per spec §5.
  const auto description = io::read_ordered_json_file(written().out / kDescription);
  const auto index = io::read_ordered_json_file(written().out / kIndexFile);
  std::vector<std::string> described, indexed;
  for (const auto& [k, v] : description.items()) {
    if (k.find('.') != std::string::npos) described.push_back(k);
  }
  for (const auto& [k, v] : index["weight_map"].items()) indexed.push_back(k);
  EXPECT_EQ(described, indexed);
  const std::string expert = "model.layers.1.mlp.experts.15.";
  for (const char* part : {"weight", "weight_scale", "weight_offset", "scale_bias"}) {
    EXPECT_EQ(description[expert + "down_proj." + part], "W4A8_DYNAMIC") << part;
  }
  EXPECT_EQ(description["model.layers.0.self_attn.k_proj.weight_scale"], "W8A8_DYNAMIC");
  EXPECT_FALSE(description.contains("model.layers.0.self_attn.k_proj.scale_bias"));
  EXPECT_EQ(description["model.layers.0.mlp.gate.weight"], "FLOAT");
  EXPECT_EQ(description["model.layers.0.input_layernorm.weight"], "FLOAT");
  EXPECT_FALSE(description.contains("model.layers.0.input_layernorm.bias"));
}

TEST_F(V1WriterTest, TensorsHaveTheV1DtypesAndShapes) {
  const auto shard = io::SafetensorsFile::open(written().out / "quant_model_weights-00001-of-00001.safetensors");
  EXPECT_TRUE(shard.metadata().empty());
  const std::string e = "model.layers.0.mlp.experts.2.";
  const std::string a = "model.layers.0.self_attn.";
  const std::vector<std::tuple<std::string, DType, Shape>> expected = {
      {e + "gate_proj.weight", DType::kI8, {64, 256}},      {e + "gate_proj.weight_scale", DType::kF32, {128, 1}},
      {e + "gate_proj.weight_offset", DType::kF32, {128, 1}}, {e + "gate_proj.scale_bias", DType::kF32, {128, 1}},
      {e + "down_proj.weight", DType::kI8, {128, 128}},     {e + "down_proj.scale_bias", DType::kF32, {256, 16}},
      {a + "q_proj.weight", DType::kI8, {512, 256}},        {a + "q_proj.weight_scale", DType::kF32, {512, 1}},
      {a + "o_proj.weight_offset", DType::kF32, {256, 1}},  {a + "q_norm.weight", DType::kBF16, {64}},
      {"model.norm.weight", DType::kBF16, {256}},           {"lm_head.weight", DType::kBF16, {4096, 256}}};
  for (const auto& [name, dtype, shape] : expected) {
    const io::TensorInfo& info = shard.info(name);
    EXPECT_EQ(info.dtype, dtype) << name;
    EXPECT_EQ(info.shape, shape) << name;
  }
}

TEST_F(V1WriterTest, ConfigDropsQuantizationConfigAndAddsNoQuantizeKey) {
  const std::string text = read_text(written().out / "config.json");
  const auto config = nlohmann::ordered_json::parse(text);
  EXPECT_FALSE(config.contains("quantization_config"));
  EXPECT_FALSE(config.contains("quantize"));
  EXPECT_EQ(config["num_hidden_layers"], kModelLayers);  // every layer written: the input's count
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(text.rfind("{\n    \"architectures\": [\n", 0), 0u) << "4-space indent as Python's json.dump";
  // Every other key is the input's, in its order.
  nlohmann::ordered_json input = io::read_ordered_json_file(written().model / "config.json");
  input.erase("quantization_config");
  EXPECT_EQ(config.dump(), input.dump());
}

TEST_F(V1WriterTest, InspectAcceptsTheOutput) {
  const InspectReport r = inspect_output_dir(written().out);
  EXPECT_TRUE(r.ok()) << violations_text(r);
  EXPECT_EQ(r.layout, "ascendV1-v1");
  EXPECT_EQ(r.model_quant_type, "W8A8_DYNAMIC");
  EXPECT_EQ(r.index_file, kIndexFile);
  EXPECT_EQ(r.by_type.at("W4A8_DYNAMIC").modules, static_cast<std::size_t>(kModelLayers * 16 * 3));
  EXPECT_EQ(r.by_type.at("W4A8_DYNAMIC").tensors, static_cast<std::size_t>(kModelLayers * 16 * 3 * 4));
  EXPECT_EQ(r.by_type.at("W8A8_DYNAMIC").modules, static_cast<std::size_t>(kModelLayers * 4));
}

TEST_F(V1WriterTest, FewerLayersMetadataAndSmallShards) {
  TempDir dir("export_v1_partial");
  const nlohmann::ordered_json metadata = {{"rotation", {{"method", "hadamard"}}}};
  const WrittenOutput result =
      write_v1_output(written().model, dir.path() / "out", 1, /*max_shard_bytes=*/1 << 20, metadata, nullptr);
  const std::size_t n = result.shards.shard_names.size();
  ASSERT_GT(n, 2u);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(result.shards.shard_names[i], fmt::format("quant_model_weights-{:05}-of-{:05}.safetensors", i + 1, n));
  }
  EXPECT_EQ(io::read_json_file(dir.path() / "out" / "config.json")["num_hidden_layers"], 1);
  const std::string text = read_text(dir.path() / "out" / kDescription);
  EXPECT_NE(text.find("    \"metadata\": {\n        \"rotation\": {\n            \"method\": \"hadamard\"\n        }\n"
                      "    },\n    \"group_size\": 0,\n"),
            std::string::npos)
      << text.substr(text.size() - 300);
  const InspectReport r = inspect_output_dir(dir.path() / "out");
  EXPECT_TRUE(r.ok()) << violations_text(r);
  EXPECT_EQ(r.shard_names.size(), n);
}

TEST_F(V1WriterTest, StaticW8A8AndNonObjectMetadataAreRejected) {
  TempDir dir("export_v1_reject");
  V1Writer writer(dir.path() / "out", DType::kBF16);
  const quant::QuantizedLinear l = static_linear("model.layers.0.self_attn.q_proj", 4, 8, false, DType::kBF16, 1);
  try {
    writer.add_linear(l);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(e.file(), (dir.path() / "out").string());
  }
  try {
    writer.finish(written().model, 0, nlohmann::ordered_json::array());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "metadata");
  }
}

TEST_F(V1WriterTest, EvaluatorComputesWhatTheDequantizedFloatModelComputes) {
  QuantizedLayerSource quantized(written().out, Layout::kAscendV1V1);
  const model::ModelConfig& config = quantized.config();
  EXPECT_EQ(config.num_hidden_layers, kModelLayers);
  {
    const model::DecoderLayer layer = quantized.load_layer(1);
    EXPECT_EQ(layer.attn.q_proj->kind(), "w8a8_dynamic");
    EXPECT_EQ(layer.mlp.router->kind(), "f32");
    ASSERT_EQ(layer.mlp.experts.size(), 16u);
    EXPECT_EQ(layer.mlp.experts[15].down_proj->kind(), "w4a8_dynamic");
    EXPECT_EQ(layer.mlp.experts[15].down_proj->out_features(), 256);
  }
  const io::Checkpoint float_checkpoint = io::Checkpoint::open(written().dequantized);
  model::CheckpointLayerSource reference(float_checkpoint, config, model::FloatPrecision::kF32);

  model::TokenSet tokens;
  for (std::int32_t i = 0; i < 64; ++i) tokens.ids.push_back((i * 389 + 11) % 4000);
  tokens.layout = model::packed_layout({40, 24});
  const Tensor start = model::embed(quantized.embedding(), tokens.ids);
  const Tensor q_hidden = model::run_layers(quantized, tokens, {});
  const Tensor f_hidden = model::run_layers(reference, tokens, {});

  // What the layers add to the residual stream: equal up to the per-token int8 activation rounding. Measured
  // 0.016; packing the nibbles the other way round gives 0.13 (attention, int8, is unaffected and dominates).
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < start.numel(); ++i) {
    const double dq = q_hidden.data<float>()[i] - start.data<float>()[i];
    const double df = f_hidden.data<float>()[i] - start.data<float>()[i];
    diff += (dq - df) * (dq - df);
    norm += df * df;
  }
  const double rel = std::sqrt(diff / norm);
  std::printf("[ figures  ] W4A8 output vs float model of the dequantized weights: relative L2 %.3g of the update\n",
              rel);
  EXPECT_GT(norm, 0);
  EXPECT_LT(rel, 3e-2);

  const auto head = quantized.lm_head();
  const Tensor logits = model::compute_logits(config, quantized.final_norm(), *head, q_hidden, 0, 4);
  for (std::size_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data<float>()[i])) << i;
}

TEST_F(V1WriterTest, InspectRejectsAWrongScaleBiasValue) {
  Copy c(written().out);
  const std::string name = "model.layers.1.mlp.experts.4.down_proj.scale_bias";
  c.edit_tensor(name, [](Tensor& t) {
    // One code's worth (8·s) moved into chunk 3 of row 5: a plausible-looking but wrong value.
    float& v = t.mutable_data<float>()[5 * 16 + 3];
    v = v + 8.0f * std::fabs(v) + 1e-3f;
  });
  const InspectReport r = inspect_output_dir(c.out);
  EXPECT_TRUE(names(r, name, "[5, 3]")) << violations_text(r);
  EXPECT_EQ(r.violations.size(), 1u) << violations_text(r);
}

TEST_F(V1WriterTest, InspectRejectsAWrongPackedShape) {
  Copy c(written().out);
  const std::string name = "model.layers.0.mlp.experts.1.up_proj.weight";
  c.edit_tensor(name, [](Tensor& t) { t = t.clone().reshaped({t.dim(0) * 2, t.dim(1) / 2}); });  // [128, 128]
  const InspectReport r = inspect_output_dir(c.out);
  EXPECT_TRUE(names(r, name, "must be [64, ")) << violations_text(r);
  EXPECT_EQ(r.violations.size(), 1u) << violations_text(r);
}

TEST_F(V1WriterTest, InspectRejectsABf16WeightScale) {
  Copy c(written().out);
  const std::string name = "model.layers.0.mlp.experts.0.gate_proj.weight_scale";
  c.edit_tensor(name, [](Tensor& t) {
    const Tensor f = t.to_f32();
    Tensor b = Tensor::zeros(DType::kBF16, t.shape());
    f32_to_bf16(f.data<float>(), b.mutable_data<std::uint16_t>(), f.numel());
    t = b;
  });
  const InspectReport r = inspect_output_dir(c.out);
  EXPECT_TRUE(names(r, name, "stored as BF16")) << violations_text(r);
}

TEST_F(V1WriterTest, InspectRejectsANormBiasAndAQuantizeKey) {
  Copy c(written().out);
  {
    // Add "model.norm.bias" to the shard, the index and the description.
    const fs::path shard = c.shard_of("model.norm.weight");
    NamedTensors tensors;
    {
      const auto file = io::SafetensorsFile::open(shard);
      for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.tensor(info.name).clone());
    }
    tensors.emplace_back("model.norm.bias", Tensor::zeros(DType::kBF16, {256}));
    io::write_safetensors(shard, tensors);
    nlohmann::ordered_json index = io::read_ordered_json_file(c.out / kIndexFile);
    index["weight_map"]["model.norm.bias"] = shard.filename().string();
    index["metadata"]["total_size"] = index["metadata"]["total_size"].get<std::int64_t>() + 512;
    write_file(c.out / kIndexFile, index.dump(2));
    nlohmann::ordered_json description = io::read_ordered_json_file(c.out / kDescription);
    nlohmann::ordered_json edited;
    for (const auto& [k, v] : description.items()) {
      edited[k] = v;
      if (k == "model.norm.weight") edited["model.norm.bias"] = "FLOAT";
    }
    write_file(c.out / kDescription, edited.dump(4));
  }
  nlohmann::ordered_json config = io::read_ordered_json_file(c.out / "config.json");
  config["quantize"] = "w8a8_dynamic";
  write_file(c.out / "config.json", config.dump(4));
  const InspectReport r = inspect_output_dir(c.out);
  EXPECT_TRUE(names(r, "model.norm.bias", "no bias")) << violations_text(r);
  EXPECT_TRUE(names(r, "config.json: quantize")) << violations_text(r);
  EXPECT_EQ(r.violations.size(), 2u) << violations_text(r);
}

}  // namespace
}  // namespace moeslim::formats::msmodelslim::testing
