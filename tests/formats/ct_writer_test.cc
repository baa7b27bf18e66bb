// The compressed-tensors writer: one layer of the tiny model written as the pipeline writes it (W4A8 experts,
// W8A8 attention, float routers and norms), read back with the checkpoint reader: every tensor's name, dtype,
// shape and bytes, and config.json's quantization_config; and what it refuses.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "core/error.h"
#include "formats/compressed_tensors/reader.h"
#include "formats/compressed_tensors/writer.h"
#include "formats/registry.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/module_id.h"

namespace moeslim::formats::compressed_tensors {
namespace {

using moeslim::testing::TempDir;
using model::ModuleId;
using quant::QuantScheme;

// A quantized linear of `shape` with pseudo-random codes in `scheme`'s range and bf16-exact scales.
quant::QuantizedLinear linear(const ModuleId& id, QuantScheme scheme, const Shape& shape, std::mt19937& rng) {
  quant::QuantizedLinear q;
  q.module = id;
  q.scheme = scheme;
  q.weight = Tensor::zeros(DType::kI8, shape);
  const int hi = scheme == QuantScheme::kW4A8Dynamic ? 7 : 127;
  std::uniform_int_distribution<int> code(-hi - 1, hi);
  for (std::size_t i = 0; i < q.weight.numel(); ++i) q.weight.mutable_data<std::int8_t>()[i] = static_cast<std::int8_t>(code(rng));
  q.weight_scale = Tensor::zeros(DType::kF32, {shape[0]});
  for (std::int64_t n = 0; n < shape[0]; ++n) q.weight_scale.mutable_data<float>()[n] = 0.0078125f * static_cast<float>(n % 5 + 1);
  return q;
}

Tensor ones(const Shape& shape) {
  Tensor t = Tensor::zeros(DType::kF32, shape);
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = 1.0f;
  return t;
}

class CtWriterTest : public ::testing::Test {
 protected:
  model::ModelConfig config_ = model::ModelConfig::load(moeslim::testing::bundled_model_dir());
  TempDir dir_{"ct_writer"};
};

TEST_F(CtWriterTest, OneLayerRoundTripsThroughTheCheckpointReader) {
  std::mt19937 rng(3);
  std::map<std::string, Shape> shapes;
  for (const model::ExpectedTensor& t : model::expected_layer_tensors(config_, 0)) shapes[t.name] = t.shape;
  std::map<std::string, quant::QuantizedLinear> written;
  {
    CtWriter w(dir_.path(), DType::kBF16);
    w.add_float("model.embed_tokens.weight", ones({config_.vocab_size, config_.hidden_size}));
    for (const ModuleId& id : model::layer_linears(config_, 0)) {
      const std::string name = model::hf_module_name(id);
      const Shape& shape = shapes.at(name + ".weight");
      if (id.role == model::ModuleRole::kRouter) {
        w.add_float(name + ".weight", ones(shape));  // as the pipeline writes a float MLP linear
        continue;
      }
      const quant::QuantizedLinear q =
          linear(id, id.is_expert() ? QuantScheme::kW4A8Dynamic : QuantScheme::kW8A8Dynamic, shape, rng);
      w.add_linear(q);
      written[name] = q;
    }
    w.add_norm({{0, model::ModuleRole::kInputNorm}, ones({config_.hidden_size}), Tensor()});
    // A zero bias (what a norm without one is given in msModelSlim's layouts) needs no tensor.
    w.add_norm({{0, model::ModuleRole::kPostAttentionNorm}, ones({config_.hidden_size}),
                Tensor::zeros(DType::kF32, {config_.hidden_size})});
    w.add_norm({ModuleId::final_norm(), ones({config_.hidden_size}), Tensor()});
    w.add_float("lm_head.weight", ones({config_.vocab_size, config_.hidden_size}));
    const WrittenOutput out = w.finish(moeslim::testing::bundled_model_dir(), 1);
    EXPECT_EQ(out.description_path, dir_.path() / "config.json");
  }

  const io::Checkpoint ckpt = io::Checkpoint::open(dir_.path());
  for (const auto& [name, q] : written) {
    const Tensor weight = ckpt.tensor(name + ".weight");
    ASSERT_EQ(weight.dtype(), DType::kI8) << name;
    ASSERT_EQ(weight.shape(), q.weight.shape()) << name;
    EXPECT_EQ(0, std::memcmp(weight.bytes(), q.weight.bytes(), q.weight.nbytes())) << name;
    const Tensor scale = ckpt.tensor(name + ".weight_scale");
    ASSERT_EQ(scale.dtype(), DType::kBF16) << name;
    ASSERT_EQ(scale.shape(), (Shape{q.weight.dim(0), 1})) << name;
    const Tensor f = scale.to_f32();
    for (std::int64_t n = 0; n < q.weight.dim(0); ++n) {
      ASSERT_EQ(f.data<float>()[n], q.weight_scale.data<float>()[n]) << name;
    }
  }
  EXPECT_EQ(ckpt.info("model.layers.0.mlp.gate.weight").dtype, DType::kBF16);
  EXPECT_EQ(ckpt.info("lm_head.weight").dtype, DType::kBF16);
  EXPECT_TRUE(ckpt.contains("model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(ckpt.contains("model.layers.0.post_attention_layernorm.bias"));
  // Nothing else: the quantized linears' two tensors each, the router, three norms, embedding and lm_head.
  EXPECT_EQ(ckpt.names().size(), 2 * written.size() + 6);

  std::ifstream in(dir_.path() / "config.json");
  const nlohmann::json c = nlohmann::json::parse(in);
  EXPECT_EQ(c["num_hidden_layers"], 1);
  const nlohmann::json& q = c["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], "int-quantized");
  EXPECT_EQ(q["ignore"], nlohmann::json({"model.layers.0.mlp.gate", "lm_head"})) << "layer 0 only";
  EXPECT_EQ(q["config_groups"].size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "tokenizer.json")) << "side files copied";

  // The registry's size estimate is the bytes written (the layer's q/k_norm aside: this test writes two norms).
  model::ModelConfig one_layer = config_;
  one_layer.limit_layers(1);
  const LinearPlanOf plan = [&](const std::string& module) {
    const auto it = written.find(module);
    return it == written.end() ? LinearPlan{} : LinearPlan{it->second.scheme, {}, false};
  };
  std::uint64_t stored = 0;
  for (const std::string& n : ckpt.names()) stored += ckpt.info(n).nbytes();
  const std::uint64_t head_norms = 2 * static_cast<std::uint64_t>(config_.head_dim) * 2;
  EXPECT_EQ(by_name("compressed-tensors").estimate_bytes(one_layer, plan, DType::kBF16), stored + head_norms);

  // The reader gives each module the scheme vLLM would, and builds the layer.
  const CtLayerSource source(dir_.path());
  EXPECT_EQ(source.scheme_name("model.layers.0.self_attn.q_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(source.scheme_name("model.layers.0.mlp.experts.3.down_proj"), "W4A8_DYNAMIC");
  EXPECT_EQ(source.scheme_name("model.layers.0.mlp.gate"), "FLOAT");
}

// config.json edited by `edit`, then read: the error the reader gives.
Error read_error(const std::filesystem::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json c = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  const nlohmann::json original = c;
  edit(c);
  std::ofstream(dir / "config.json") << c.dump(2);
  Error result(ErrorCode::kInternal, "");
  try {
    CtLayerSource source(dir);
    source.load_layer(0);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    result = e;
  }
  std::ofstream(dir / "config.json") << original.dump(2);
  return result;
}

TEST_F(CtWriterTest, TheReaderRefusesWhatItDoesNotRunNamingTheKey) {
  std::mt19937 rng(9);
  {
    CtWriter w(dir_.path(), DType::kBF16);
    w.add_float("model.embed_tokens.weight", ones({config_.vocab_size, config_.hidden_size}));
    std::map<std::string, Shape> shapes;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config_, 0)) shapes[t.name] = t.shape;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config_, 0)) {
      const auto id = model::parse_hf_module_name(t.name.substr(0, t.name.size() - 7));
      if (!id || id->role == model::ModuleRole::kRouter || id->is_norm()) {
        w.add_float(t.name, ones(t.shape));
        continue;
      }
      w.add_linear(linear(*id, id->is_expert() ? QuantScheme::kW4A8Dynamic : QuantScheme::kW8A8Dynamic, t.shape, rng));
    }
    w.finish(moeslim::testing::bundled_model_dir(), 1);
  }
  Error e = read_error(dir_.path(), [](nlohmann::json& c) {
    c["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] = "group";
  });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "quantization_config.config_groups.group_0.weights.strategy");
  e = read_error(dir_.path(), [](nlohmann::json& c) { c["quantization_config"]["format"] = "float-quantized"; });
  EXPECT_EQ(e.field(), "quantization_config.format");
  // pack-quantized int4 is read weight-only (W4A16); with int8 inputs it has no scheme moeslim runs.
  e = read_error(dir_.path(), [](nlohmann::json& c) { c["quantization_config"]["format"] = "pack-quantized"; });
  EXPECT_EQ(e.field(), "quantization_config.config_groups.group_0.input_activations");
  e = read_error(dir_.path(), [](nlohmann::json& c) { c["quantization_config"]["ignore"] = {"lm_head"}; });
  EXPECT_EQ(e.field(), "quantization_config.ignore") << "the router must be ignored: " << e.what();
  e = read_error(dir_.path(), [](nlohmann::json& c) {
    c["quantization_config"]["config_groups"]["group_1"]["input_activations"] = nullptr;
  });
  EXPECT_EQ(e.field(), "quantization_config.config_groups.group_1.input_activations");
}

Error error_of(const std::function<void(CtWriter&)>& f, const std::filesystem::path& dir) {
  CtWriter w(dir, DType::kBF16);
  try {
    f(w);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "accepted";
  return Error(ErrorCode::kInternal, "");
}

TEST_F(CtWriterTest, RefusesBiasesAndStaticW8A8NamingTheTensor) {
  std::mt19937 rng(5);
  const ModuleId q_proj{0, model::ModuleRole::kQProj};
  const Shape shape{config_.q_width(), config_.hidden_size};
  Error e = error_of([&](CtWriter& w) {
    quant::QuantizedLinear l = linear(q_proj, QuantScheme::kW8A8Dynamic, shape, rng);
    l.bias = ones({shape[0]});
    w.add_linear(l);
  }, dir_.path() / "bias");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj.bias");
  EXPECT_NE(std::string(e.what()).find("flex_smooth"), std::string::npos) << e.what();

  e = error_of([&](CtWriter& w) {
    w.add_norm({{0, model::ModuleRole::kInputNorm}, ones({config_.hidden_size}), ones({config_.hidden_size})});
  }, dir_.path() / "norm");
  EXPECT_EQ(e.field(), "model.layers.0.input_layernorm.bias");

  e = error_of([&](CtWriter& w) { w.add_linear(linear(q_proj, QuantScheme::kW8A8, shape, rng)); },
               dir_.path() / "static");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj");
}

}  // namespace
}  // namespace moeslim::formats::compressed_tensors
