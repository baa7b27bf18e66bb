// W4A16 in the compressed-tensors format (docs/compressed-tensors.md §2.3, §3.a, §4): one layer of the tiny model
// with symmetric group-64 experts and asymmetric group-128 attention, written, read back with the checkpoint
// reader and with the format's reader: pack-quantized tensors (names, dtypes, shapes, the words decoding to the
// codes written, weight_shape, packed zero points), quantization_config (pack-quantized groups, the top-level
// group_size vLLM-Ascend reads), the size estimate, the reader's linears against the runtime's; and refusals.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "core/error.h"
#include "formats/compressed_tensors/int4_words.h"
#include "formats/compressed_tensors/quantization_config.h"
#include "formats/compressed_tensors/reader.h"
#include "formats/compressed_tensors/writer.h"
#include "formats/registry.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/module_id.h"
#include "model/weight_only_linear.h"

namespace moeslim::formats::compressed_tensors {
namespace {

using moeslim::testing::TempDir;
using model::ModuleId;
using quant::QuantScheme;
using quant::WeightGrid;

const WeightGrid kExperts{64, true};
const WeightGrid kAttention{128, false};

// A W4A16 linear of `shape` on `grid`: pseudo-random int4 codes, bf16-exact scales, int4 zero points.
quant::QuantizedLinear w4a16(const ModuleId& id, const WeightGrid& grid, const Shape& shape, std::mt19937& rng) {
  quant::QuantizedLinear q;
  q.module = id;
  q.scheme = QuantScheme::kW4A16;
  q.grid = grid;
  q.weight = Tensor::zeros(DType::kI8, shape);
  std::uniform_int_distribution<int> code(-8, 7);
  for (std::size_t i = 0; i < q.weight.numel(); ++i) {
    q.weight.mutable_data<std::int8_t>()[i] = static_cast<std::int8_t>(code(rng));
  }
  const std::int64_t groups = shape[1] / grid.group_size;
  q.weight_scale = Tensor::zeros(DType::kF32, {shape[0], groups});
  for (std::int64_t i = 0; i < shape[0] * groups; ++i) {
    q.weight_scale.mutable_data<float>()[i] = 0.0078125f * static_cast<float>(i % 7 + 1);
  }
  if (!grid.symmetric) {
    q.weight_zero_point = Tensor::zeros(DType::kF32, {shape[0], groups});
    for (std::int64_t i = 0; i < shape[0] * groups; ++i) q.weight_zero_point.mutable_data<float>()[i] = code(rng);
  }
  return q;
}

Tensor ones(const Shape& shape) {
  Tensor t = Tensor::zeros(DType::kF32, shape);
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = 1.0f;
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

class CtW4A16Test : public ::testing::Test {
 protected:
  // One layer, every linear but the router W4A16; returns what was written, by module.
  std::map<std::string, quant::QuantizedLinear> write_layer() {
    std::mt19937 rng(21);
    std::map<std::string, Shape> shapes;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config_, 0)) shapes[t.name] = t.shape;
    std::map<std::string, quant::QuantizedLinear> written;
    CtWriter w(dir_.path(), DType::kBF16);
    w.add_float("model.embed_tokens.weight", ones({config_.vocab_size, config_.hidden_size}));
    for (const ModuleId& id : model::layer_linears(config_, 0)) {
      const std::string name = model::hf_module_name(id);
      const Shape& shape = shapes.at(name + ".weight");
      if (id.role == model::ModuleRole::kRouter) {
        w.add_float(name + ".weight", ones(shape));
        continue;
      }
      written[name] = w4a16(id, id.is_expert() ? kExperts : kAttention, shape, rng);
      w.add_linear(written[name]);
    }
    for (const auto role : {model::ModuleRole::kInputNorm, model::ModuleRole::kPostAttentionNorm,
                            model::ModuleRole::kQNorm, model::ModuleRole::kKNorm}) {
      const std::int64_t n = role == model::ModuleRole::kQNorm || role == model::ModuleRole::kKNorm
                                 ? config_.head_dim
                                 : config_.hidden_size;
      w.add_norm({{0, role}, ones({n}), Tensor()});
    }
    w.add_norm({ModuleId::final_norm(), ones({config_.hidden_size}), Tensor()});
    w.add_float("lm_head.weight", ones({config_.vocab_size, config_.hidden_size}));
    w.finish(moeslim::testing::bundled_model_dir(), 1);
    return written;
  }

  model::ModelConfig config_ = model::ModelConfig::load(moeslim::testing::bundled_model_dir());
  TempDir dir_{"ct_w4a16"};
};

TEST_F(CtW4A16Test, PackQuantizedTensorsHoldTheCodesScalesAndZeroPointsWritten) {
  const auto written = write_layer();
  const io::Checkpoint ckpt = io::Checkpoint::open(dir_.path());
  for (const auto& [name, q] : written) {
    const std::int64_t out = q.weight.dim(0), in = q.weight.dim(1), groups = q.weight_scale.dim(1);
    const Tensor packed = ckpt.tensor(name + ".weight_packed");
    ASSERT_EQ(packed.dtype(), DType::kI32) << name;
    ASSERT_EQ(packed.shape(), (Shape{out, in / 8})) << name;
    EXPECT_TRUE(same_bytes(unpack_int4_columns(packed, in), q.weight)) << name;
    const Tensor scale = ckpt.tensor(name + ".weight_scale");
    ASSERT_EQ(scale.dtype(), DType::kBF16) << name;
    ASSERT_EQ(scale.shape(), (Shape{out, groups})) << name;
    EXPECT_TRUE(same_bytes(scale.to_f32(), q.weight_scale)) << name;
    const Tensor shape = ckpt.tensor(name + ".weight_shape");
    ASSERT_EQ(shape.dtype(), DType::kI64);
    std::int64_t dims[2];
    std::memcpy(dims, shape.bytes(), sizeof dims);
    EXPECT_EQ(dims[0], out);
    EXPECT_EQ(dims[1], in);
    EXPECT_FALSE(ckpt.contains(name + ".weight")) << "pack-quantized has no unpacked weight";
    if (q.grid.symmetric) {
      EXPECT_FALSE(ckpt.contains(name + ".weight_zero_point")) << "vLLM refuses a symmetric zero point";
    } else {
      const Tensor zp = ckpt.tensor(name + ".weight_zero_point");
      ASSERT_EQ(zp.shape(), (Shape{(out + 7) / 8, groups})) << name;
      EXPECT_TRUE(same_bytes(unpack_int4_rows_from_words(zp, out).to_f32(), q.weight_zero_point)) << name;
    }
  }
  // Per linear: packed, scale, shape (+ zero point for the four attention linears); the router, 4 norms,
  // the final norm, the embedding and lm_head.
  EXPECT_EQ(ckpt.names().size(), 3 * written.size() + 4 + 8);

  const nlohmann::json q = nlohmann::json::parse(std::ifstream(dir_.path() / "config.json"))["quantization_config"];
  EXPECT_EQ(q["format"], "pack-quantized");
  EXPECT_EQ(q["group_size"], 64) << "the experts' group size, for vLLM-Ascend's W4A16 MoE method";
  ASSERT_EQ(q["config_groups"].size(), 2u);
  const nlohmann::json& experts = q["config_groups"]["group_0"];
  EXPECT_EQ(experts["targets"], nlohmann::json({"Linear"}));
  EXPECT_EQ(experts["input_activations"], nullptr);
  EXPECT_EQ(experts["weights"]["strategy"], "group");
  EXPECT_EQ(experts["weights"]["group_size"], 64);
  EXPECT_EQ(experts["weights"]["symmetric"], true);
  EXPECT_EQ(experts["weights"]["actorder"], nullptr);
  EXPECT_EQ(q["config_groups"]["group_1"]["weights"]["symmetric"], false);
  EXPECT_EQ(q["config_groups"]["group_1"]["weights"]["group_size"], 128);

  model::ModelConfig one_layer = config_;
  one_layer.limit_layers(1);
  const LinearPlanOf plan = [&](const std::string& module) {
    const auto it = written.find(module);
    return it == written.end() ? LinearPlan{} : LinearPlan{QuantScheme::kW4A16, it->second.grid, false};
  };
  std::uint64_t stored = 0;
  for (const std::string& n : ckpt.names()) stored += ckpt.info(n).nbytes();
  EXPECT_EQ(by_name("compressed-tensors").estimate_bytes(one_layer, plan, DType::kBF16), stored);
}

TEST_F(CtW4A16Test, TheReaderRunsWhatTheRuntimeRuns) {
  const auto written = write_layer();
  CtLayerSource source(dir_.path());
  EXPECT_EQ(source.scheme_name("model.layers.0.self_attn.o_proj"), "W4A16");
  EXPECT_EQ(source.scheme_name("model.layers.0.mlp.experts.2.up_proj"), "W4A16");
  const model::DecoderLayer layer = source.load_layer(0);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  const auto expect_same = [&](const model::Linear& got, const quant::QuantizedLinear& q) {
    const auto want = model::make_w4a16_linear(q.weight, q.weight_scale, q.weight_zero_point, Tensor(),
                                               DType::kBF16, model::FloatPrecision::kF32);
    EXPECT_EQ(got.kind(), "w4a16");
    std::vector<float> x(3 * q.weight.dim(1)), a(3 * q.weight.dim(0)), b(a.size());
    for (float& v : x) v = normal(rng);
    got.forward(x.data(), 3, a.data());
    want->forward(x.data(), 3, b.data());
    EXPECT_EQ(a, b) << model::hf_module_name(q.module);
  };
  expect_same(*layer.attn.o_proj, written.at("model.layers.0.self_attn.o_proj"));
  expect_same(*layer.attn.q_proj, written.at("model.layers.0.self_attn.q_proj"));
  expect_same(*layer.mlp.experts[2].up_proj, written.at("model.layers.0.mlp.experts.2.up_proj"));
  expect_same(*layer.mlp.experts[5].down_proj, written.at("model.layers.0.mlp.experts.5.down_proj"));
}

TEST_F(CtW4A16Test, TheReaderRefusesBrokenTensorsNamingThem) {
  write_layer();
  const std::filesystem::path file = dir_.path() / "config.json";
  const nlohmann::json original = nlohmann::json::parse(std::ifstream(file));
  // config.json edited by `edit`, then the layer read: the field the error names (the file restored after).
  const auto read_fails_on = [&](const std::function<void(nlohmann::json&)>& edit) -> std::string {
    nlohmann::json c = original;
    edit(c);
    std::ofstream(file) << c.dump(2);
    std::string field = "accepted";
    try {
      CtLayerSource(dir_.path()).load_layer(0);
    } catch (const Error& e) {
      field = e.field();
    }
    std::ofstream(file) << original.dump(2);
    return field;
  };
  // The attention's scales are [out, 2] (group 128): a config saying 64 expects [out, 4].
  EXPECT_EQ(read_fails_on([](nlohmann::json& c) {
              c["quantization_config"]["config_groups"]["group_1"]["weights"]["group_size"] = 64;
            }),
            "model.layers.0.self_attn.q_proj.weight_scale");
  EXPECT_EQ(read_fails_on([](nlohmann::json& c) {
              c["quantization_config"]["config_groups"]["group_1"]["weights"]["group_size"] = "128";
            }),
            "quantization_config.config_groups.group_1.weights.group_size");
  EXPECT_EQ(read_fails_on([](nlohmann::json& c) {
              c["quantization_config"]["config_groups"]["group_1"]["weights"]["actorder"] = "group";
            }),
            "quantization_config.config_groups.group_1.weights.actorder");
  EXPECT_EQ(read_fails_on([](nlohmann::json& c) {
              c["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
            }),
            "quantization_config.config_groups.group_0.weights.num_bits");
}

TEST(CtW4A16Config, RefusesAsymmetricExpertsAndGroupsThatDoNotFit) {
  const model::ModelConfig config = model::ModelConfig::load(moeslim::testing::bundled_model_dir());
  const auto error_of = [&](const WeightGrid& attention, const WeightGrid& experts) -> Error {
    try {
      quantization_config(config, [&](const std::string& m) {
        if (m.ends_with("mlp.gate")) return LinearPlan{};
        return LinearPlan{QuantScheme::kW4A16, m.find("experts") != std::string::npos ? experts : attention, false};
      });
    } catch (const Error& e) {
      return e;
    }
    return Error(ErrorCode::kInternal, "accepted");
  };
  Error e = error_of({128, true}, {128, false});
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "model.layers.0.mlp.experts.0.gate_proj");
  EXPECT_NE(std::string(e.what()).find("only symmetric int4 experts"), std::string::npos) << e.what();
  // The tiny model's hidden size is 256: a group of 96 does not divide q_proj's input.
  e = error_of({96, true}, {128, true});
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj");
  EXPECT_NE(std::string(e.what()).find("group_size 96 does not divide its 256 input columns"), std::string::npos)
      << e.what();
  e = error_of({128, false}, {0, true});
  EXPECT_EQ(e.code(), ErrorCode::kInternal) << "asymmetric attention and per-channel experts are fine: " << e.what();
}

}  // namespace
}  // namespace moeslim::formats::compressed_tensors
