// Each registered format, end to end on the bundled tiny model's shapes: a model written through the registry's
// writer adds exactly the tensors planned for it (writer_calls.h), each written once, takes the bytes
// estimate_bytes() predicts, reads back through the registry, and passes inspect.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/test_paths.h"
#include "core/error.h"
#include "formats/registry.h"
#include "formats/writer_calls.h"
#include "io/json_file.h"
#include "model/config.h"
#include "model/module_id.h"
#include "model/layer_loader.h"
#include "common/module_by_name.h"

namespace moeslim::formats {
namespace {

namespace fs = std::filesystem;

Tensor filled(Shape shape, float value) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = value;
  return t;
}

// A linear of `plan` with codes 0, weight scales 1/256 and (static) input scale 1/64, offset 0: every derived
// value is exact, so deq_scale = 2^-14 and quant_bias = 0 hold bit for bit.
quant::QuantizedLinear linear(const std::string& module, const Shape& shape, const LinearPlan& plan) {
  quant::QuantizedLinear l;
  l.module = moeslim::testing::module_id(module);
  l.scheme = plan.scheme;
  const std::int64_t out = shape[0];
  if (plan.has_bias) l.bias = Tensor::zeros(DType::kF32, {out});
  if (plan.scheme == quant::QuantScheme::kFloat) {
    l.weight = filled(shape, 0.01f);
    return l;
  }
  l.weight = Tensor::zeros(DType::kI8, shape);
  l.weight_scale = filled({out}, 1.0f / 256);
  if (plan.scheme == quant::QuantScheme::kW8A8) {
    l.input_scale = filled({1}, 1.0f / 64);
    l.input_offset = Tensor::zeros(DType::kF32, {1});
    l.deq_scale = filled({out}, 1.0f / 16384);
    l.quant_bias = Tensor::zeros(DType::kI32, {out});
  }
  return l;
}

// Streams the whole model in Hugging Face module order, as the pipeline does, told its tensors ahead.
io::ShardedWriteSummary write_model(const OutputFormat& format, const LinearPlanOf& plan_of,
                                    const model::ModelConfig& config, const fs::path& out) {
  const auto writer = format.open_writer(out, DType::kBF16);
  writer->plan(planned_output(format, config, plan_of, DType::kBF16));
  const Shape embedding{config.vocab_size, config.hidden_size};
  writer->add_float("model.embed_tokens.weight", filled(embedding, 0.02f));
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    std::map<std::string, Shape> shapes;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) shapes[t.name] = t.shape;
    std::vector<std::string> linears, norms;
    for (const model::ModuleId& id : model::layer_linears(config, l)) linears.push_back(model::hf_module_name(id));
    for (const model::ModuleId& id : model::layer_norms(l)) norms.push_back(model::hf_module_name(id));
    const auto add_norm = [&](const std::string& n) {
      writer->add_norm({moeslim::testing::module_id(n), filled(shapes.at(n + ".weight"), 1.0f), Tensor()});
    };
    for (std::size_t i = 0; i < 4; ++i) writer->add_linear(linear(linears[i], shapes.at(linears[i] + ".weight"), plan_of(linears[i])));
    add_norm(norms[0]);
    add_norm(norms[1]);
    for (std::size_t i = 4; i < linears.size(); ++i) {
      writer->add_linear(linear(linears[i], shapes.at(linears[i] + ".weight"), plan_of(linears[i])));
    }
    add_norm(norms[2]);
    add_norm(norms[3]);
  }
  writer->add_norm({model::ModuleId::final_norm(), filled({config.hidden_size}, 1.0f), Tensor()});
  writer->add_float("lm_head.weight", filled(embedding, 0.03f));
  return writer->finish(testing::bundled_model_dir(), 0).shards;
}

// The bundled recipes' plans: v0 W8A8 (static attention with m4's q/k/v bias, dynamic experts), v1 W4A8 (dynamic
// attention, int4 experts; also in compressed-tensors); routers float.
bool holds_v1_plan(std::string_view format) { return format == "ascendV1-v1" || format == "compressed-tensors"; }

LinearPlanOf plan_for(std::string_view format) {
  const bool v1 = holds_v1_plan(format);
  return [v1](const std::string& module) {
    LinearPlan p;
    const bool expert = module.find(".mlp.") != std::string::npos;
    if (module.ends_with("mlp.gate")) return p;
    if (v1) {
      p.scheme = expert ? quant::QuantScheme::kW4A8Dynamic : quant::QuantScheme::kW8A8Dynamic;
    } else {
      p.scheme = expert ? quant::QuantScheme::kW8A8Dynamic : quant::QuantScheme::kW8A8;
      p.has_bias = module.ends_with("q_proj") || module.ends_with("k_proj") || module.ends_with("v_proj");
    }
    return p;
  };
}

TEST(OutputFormats, EstimateEqualsWhatIsWrittenAndTheOutputReadsBackAndInspectsClean) {
  const model::ModelConfig config = model::ModelConfig::load(testing::bundled_model_dir());
  for (const OutputFormat* format : all_formats()) {
    SCOPED_TRACE(std::string(format->name()));
    testing::TempDir dir("formats_roundtrip");
    const fs::path out = dir.path() / "out";
    fs::create_directories(out);
    const LinearPlanOf plan = plan_for(format->name());
    const io::ShardedWriteSummary written = write_model(*format, plan, config, out);
    std::vector<std::string> planned_names;
    for (const io::PlannedTensor& t : planned_output(*format, config, plan, DType::kBF16)) {
      planned_names.push_back(t.name);
    }
    EXPECT_EQ(written.names, planned_names);
    EXPECT_EQ(written.tensors_written_once, written.tensor_count);

    std::uint64_t total_size = 0;
    for (const auto& e : fs::directory_iterator(out)) {
      if (e.path().string().ends_with(".safetensors.index.json")) {
        total_size = io::read_json_file(e.path())["metadata"]["total_size"].get<std::uint64_t>();
      }
    }
    EXPECT_EQ(format->estimate_bytes(config, plan, DType::kBF16), total_size);

    ASSERT_EQ(detect(out), format);
    const InspectReport report = inspect_dir(out);
    EXPECT_TRUE(report.ok()) << format_inspect_report(report);
    EXPECT_EQ(report.layout, format->name());
    const auto source = format->open_reader(out, model::FloatPrecision::kF32, 0);
    EXPECT_EQ(source->config().num_hidden_layers, config.num_hidden_layers);
    const model::DecoderLayer layer = source->load_layer(0);
    EXPECT_EQ(layer.attn.q_proj->kind(), holds_v1_plan(format->name()) ? "w8a8_dynamic" : "w8a8");
  }
}

TEST(OutputFormats, Int4ExpertsHalveWhatInt8ExpertsWrite) {
  const model::ModelConfig config = model::ModelConfig::load(testing::bundled_model_dir());
  const OutputFormat& v1 = by_name("ascendV1-v1");
  const auto int8 = [](const std::string& m) {
    const bool router = m.ends_with("mlp.gate");
    return LinearPlan{router ? quant::QuantScheme::kFloat : quant::QuantScheme::kW8A8Dynamic, {}, false};
  };
  const auto int4 = [&](const std::string& m) {
    LinearPlan p = int8(m);
    if (m.find(".experts.") != std::string::npos) p.scheme = quant::QuantScheme::kW4A8Dynamic;
    return p;
  };
  // Expert codes halve; each expert projection gains an F32 scale_bias of [out, 1] (gate/up) or [out, 16] (down).
  const auto per_layer = static_cast<std::uint64_t>(config.num_experts);
  const auto codes = per_layer * 3 * static_cast<std::uint64_t>(config.moe_intermediate_size * config.hidden_size);
  const auto scale_bias = per_layer * 4 *
                          static_cast<std::uint64_t>(2 * config.moe_intermediate_size + 16 * config.hidden_size);
  const auto layers = static_cast<std::uint64_t>(config.num_hidden_layers);
  EXPECT_EQ(v1.estimate_bytes(config, int8, DType::kBF16) - v1.estimate_bytes(config, int4, DType::kBF16),
            layers * (codes / 2 - scale_bias));
}

TEST(OutputFormats, CheckRefusesASchemeTheLayoutCannotHoldNamingIt) {
  const model::ModelConfig config = model::ModelConfig::load(testing::bundled_model_dir());
  const auto all = [](quant::QuantScheme s) { return [s](const std::string&) { return LinearPlan{s, {}, false}; }; };
  for (const auto& [name, scheme] : {std::pair{"ascendV1", quant::QuantScheme::kW4A8Dynamic},
                                     std::pair{"mindie", quant::QuantScheme::kW4A8Dynamic},
                                     std::pair{"ascendV1-v1", quant::QuantScheme::kW8A8}}) {
    try {
      by_name(name).check(config, all(scheme));
      ADD_FAILURE() << name << " accepted " << quant::quant_scheme_name(scheme);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(quant::quant_scheme_name(scheme)), std::string::npos) << e.what();
      EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj");
    }
  }
}

TEST(OutputFormats, RegistryNamesTheKnownFormatsAndDetectsNothingInAFloatCheckpoint) {
  EXPECT_EQ(all_formats().size(), 4u);
  EXPECT_EQ(by_name("mindie").name(), "mindie");
  EXPECT_EQ(by_name("compressed-tensors").name(), "compressed-tensors");
  EXPECT_THROW(by_name("gguf"), Error);
  EXPECT_EQ(detect(testing::bundled_model_dir()), nullptr);
}

}  // namespace
}  // namespace moeslim::formats
