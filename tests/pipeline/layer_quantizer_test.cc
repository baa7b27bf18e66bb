// The layer quantizer on one real layer of the bundled outlier model: with the bundled recipes' real steps
// (W8A8: m4, static calibration, quantized propagation; W4A8: flex_smooth with its search, SSZ int4, float
// propagation), and with a test-only step that checks the contract every step relies on (what it requested
// arrives, the order of the hooks, deferred edits reach the quantized weight, its calibration pass sees the
// quantized pass).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/scoped_threads.h"
#include "common/recipe_text.h"
#include "common/test_paths.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/calibration_data.h"
#include "pipeline/layer_quantizer.h"
#include "quant/step_registry.h"
#include "recipe/recipe.h"
#include "text/tokenizer.h"

namespace moeslim::pipeline {
namespace {

using model::ModuleId;
using model::ModuleRole;
using moeslim::testing::source_dir;
using moeslim::testing::TempDir;
using quant::QuantScheme;

constexpr std::int64_t kLayer = 1;

// Layer kLayer of the outlier model and a few calibration prompts (the first ones of the bundled set).
class LayerQuantizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path model_dir = source_dir() / "models" / "tiny-qwen3-moe-outliers";
    config_ = model::ModelConfig::load(model_dir);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(model_dir));
    tokenizer_ = std::make_unique<text::Tokenizer>(text::Tokenizer::from_model_dir_or_file(model_dir));
    std::ifstream in(source_dir() / "data" / "qwen3-moe_calib_prompt_50.json");
    const nlohmann::json all = nlohmann::json::parse(in);
    std::ofstream(dir_.path() / "prompts.json") << nlohmann::json(std::vector<nlohmann::json>(all.begin(), all.begin() + 6));
    set_ = load_calibration_set(dir_.path() / "prompts.json", *tokenizer_, 2, false, config_.max_position_embeddings);
    embedding_ = checkpoint_->tensor("model.embed_tokens.weight");
  }

  ActivationSet embedded() const { return {model::embed(embedding_, set_.tokens.ids), &set_.tokens.layout, 2}; }
  model::LayerTensors raw() const { return model::read_layer_tensors(*checkpoint_, config_, kLayer); }
  std::int64_t real_tokens() const { return set_.tokens.layout.real_rows(); }

  // The float layer's output on `set`'s activations.
  Tensor float_output(const ActivationSet& set, model::FloatPrecision precision) const {
    ActivationSet out{set.hidden.clone(), set.layout, set.batch_size};
    run_layer(config_, model::build_float_layer(config_, kLayer, raw(), precision), out, nullptr);
    return out.hidden;
  }

  LayerQuantizerOptions options(quant::Propagation propagation) const {
    LayerQuantizerOptions o;
    o.propagation = propagation;
    o.settings.float_precision = model::FloatPrecision::kF32;
    return o;
  }

  recipe::Recipe recipe_from(const std::string& yaml) const { return moeslim::testing::load_recipe_text(dir_.path(), yaml); }

  TempDir dir_{"layer_quantizer"};
  model::ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  CalibrationSet set_;
  Tensor embedding_;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>());
}

TEST_F(LayerQuantizerTest, W8A8RecipeStepsQuantizeCalibrateAndPropagateTheQuantizedOutputs) {
  const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-moe-w8a8.yaml");
  ASSERT_EQ(r.step_names(), (std::vector<std::string>{"m4", "quantize", "static_calibration"}));
  ActivationSet anti = embedded(), calib = embedded();
  const Tensor float_anti = float_output(anti, model::FloatPrecision::kF32);
  PhaseTimes times;
  const QuantizedLayer q =
      quantize_layer(config_, kLayer, raw(), r.steps, &anti, calib, options(quant::Propagation::kQuantized), times);

  EXPECT_TRUE(same_bits(anti.hidden, float_anti)) << "statistics are taken on the float model";
  EXPECT_FALSE(same_bits(calib.hidden, float_output(embedded(), model::FloatPrecision::kF32)))
      << "the calibration set moves on through the quantized layer";
  EXPECT_GT(q.relative_error, 0.0);
  EXPECT_LT(q.relative_error, 0.2);
  ASSERT_EQ(q.linears.size(), model::layer_linears(config_, kLayer).size());
  for (const ModuleId& id : model::layer_linears(config_, kLayer)) {
    const quant::QuantizedLinear& l = q.linears.at(id);
    EXPECT_EQ(l.module, id);
    if (id.role == ModuleRole::kRouter) {
      EXPECT_EQ(l.scheme, QuantScheme::kFloat);
    } else if (id.is_attention()) {
      EXPECT_EQ(l.scheme, QuantScheme::kW8A8) << model::hf_module_name(id);
      ASSERT_EQ(l.input_scale.numel(), 1u) << model::hf_module_name(id) << " was calibrated";
      EXPECT_GT(l.input_scale.data<float>()[0], 0.0f);
    } else {
      EXPECT_EQ(l.scheme, QuantScheme::kW8A8Dynamic) << model::hf_module_name(id);
    }
  }
  // q, k and v read one input, so they end with one input scale and offset.
  const auto& qp = q.linears.at({kLayer, ModuleRole::kQProj});
  for (const ModuleRole role : {ModuleRole::kKProj, ModuleRole::kVProj}) {
    EXPECT_EQ(q.linears.at({kLayer, role}).input_scale.data<float>()[0], qp.input_scale.data<float>()[0]);
    EXPECT_EQ(q.linears.at({kLayer, role}).input_offset.data<float>()[0], qp.input_offset.data<float>()[0]);
  }
  // m4 gives every norm a bias, and q/k/v a bias W·shift.
  for (const ModuleId& norm : model::layer_norms(kLayer)) EXPECT_FALSE(q.norms.at(norm).bias.empty());
  EXPECT_FALSE(qp.bias.empty());
  // Tokens are counted on the quantized pass, which carries the calibration set.
  EXPECT_EQ(std::accumulate(q.expert_tokens.begin(), q.expert_tokens.end(), std::int64_t{0}),
            real_tokens() * config_.num_experts_per_tok);
  for (const char* phase : {"anti statistics", "float reference", "smoothing", "weight quantization", "calibration"}) {
    EXPECT_EQ(times.seconds.count(phase), 1u) << phase;
  }
}

TEST_F(LayerQuantizerTest, W4A8RecipeStepsSearchSmoothAndPropagateTheFloatOutputs) {
  const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-30b-w4a8.yaml");
  ASSERT_EQ(r.step_names(), (std::vector<std::string>{"flex_smooth", "quantize"}));
  ActivationSet calib = embedded();
  calib.batch_size = 1;
  const Tensor expected = float_output(calib, model::FloatPrecision::kF32);
  PhaseTimes times;
  const QuantizedLayer q =
      quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, options(quant::Propagation::kFloat), times);

  EXPECT_TRUE(same_bits(calib.hidden, expected)) << "v1 carries the float layer's outputs";
  EXPECT_GT(q.relative_error, 0.0);
  EXPECT_LT(q.relative_error, 0.3);
  ASSERT_EQ(q.smoothing.size(), 2u);
  EXPECT_EQ(q.smoothing[0].subgraph, "ov");  // ov before norm-linear (§6.3)
  EXPECT_EQ(q.smoothing[1].subgraph, "norm-linear");
  for (const quant::SmoothingChoice& c : q.smoothing) EXPECT_TRUE(c.searched) << c.subgraph;
  const quant::QuantizedLinear& up = q.linears.at(ModuleId::expert_proj(kLayer, ModuleRole::kUpProj, 0));
  EXPECT_EQ(up.scheme, QuantScheme::kW4A8Dynamic);
  const auto* codes = up.weight.data<std::int8_t>();
  EXPECT_TRUE(std::all_of(codes, codes + up.weight.numel(), [](std::int8_t c) { return c >= -8 && c <= 7; }));
  EXPECT_EQ(q.linears.at({kLayer, ModuleRole::kQProj}).scheme, QuantScheme::kW8A8Dynamic);
  for (const ModuleId& norm : model::layer_norms(kLayer)) EXPECT_TRUE(q.norms.at(norm).bias.empty());
  EXPECT_EQ(std::accumulate(q.expert_tokens.begin(), q.expert_tokens.end(), std::int64_t{0}),
            real_tokens() * config_.num_experts_per_tok);
  EXPECT_EQ(times.seconds.count("quantized check"), 1u);
}

// Each expert weight's mapped pages go back twice: after its group ran in the float pass and after it was
// quantized. Attention weights go back once, after they were quantized; the router (float) is kept.
TEST_F(LayerQuantizerTest, MappedWeightsAreReleasedAfterEachUse) {
  const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-30b-w4a8.yaml");
  ActivationSet calib = embedded();
  PhaseTimes times;
  LayerQuantizerOptions o = options(quant::Propagation::kFloat);
  o.settings.experts_per_group = 3;
  std::map<std::string, int> released;
  std::vector<std::int64_t> first_release;  // the expert of each expert weight's first release, in order
  std::mutex mutex;  // the linears are quantized as tasks over the threads
  o.release_mapped = [&](const std::string& name) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (released[name]++ == 0 && name.find(".experts.") != std::string::npos) {
      first_release.push_back(std::stoll(name.substr(name.find(".experts.") + 9)));
    }
  };
  const QuantizedLayer q = [&] {
    const testing::ScopedThreads scoped(2);
    return quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, o, times);
  }();
  for (const ModuleId& id : model::layer_linears(config_, kLayer)) {
    const std::string name = model::hf_weight_name(id);
    const int expected = id.role == ModuleRole::kRouter ? 0 : id.is_expert() ? 2 : 1;
    EXPECT_EQ(released.count(name) > 0 ? released.at(name) : 0, expected) << name;
  }
  EXPECT_EQ(released.size(), model::layer_linears(config_, kLayer).size() - 1);
  // The float pass goes group by group, releasing each group before it loads the next.
  ASSERT_EQ(static_cast<std::int64_t>(first_release.size()), 3 * config_.num_experts);
  for (std::size_t i = 1; i < first_release.size(); ++i) {
    EXPECT_LE(first_release[i - 1] / 3, first_release[i] / 3) << "release " << i;
  }
}

// How often each weight's mapped pages are handed back. Smaller groups than the layer: after each float pass (W8A8
// runs two: anti statistics, float reference) and once quantized. One group: they stay mapped through the float
// passes, and, unless a step holds observed input rows (W4A8's α/β search), through the steps until the quantize
// step hands each back.
TEST_F(LayerQuantizerTest, ExpertPagesStayMappedWhileTheLayerIsOneGroupAndNoStepHoldsRows) {
  struct Case {
    const char* recipe;
    quant::Propagation propagation;
    std::int64_t per_group;
    int expert_releases;
  };
  for (const Case& k : {Case{"qwen3-moe-w8a8.yaml", quant::Propagation::kQuantized, 0, 1},
                        Case{"qwen3-moe-w8a8.yaml", quant::Propagation::kQuantized, 3, 3},
                        Case{"qwen3-30b-w4a8.yaml", quant::Propagation::kFloat, 0, 2},
                        Case{"qwen3-30b-w4a8.yaml", quant::Propagation::kFloat, 3, 2}}) {
    SCOPED_TRACE(std::string(k.recipe) + ", groups of " + std::to_string(k.per_group));
    const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / k.recipe);
    const bool anti_pass = k.propagation == quant::Propagation::kQuantized;
    ActivationSet anti = embedded(), calib = embedded();
    PhaseTimes times;
    LayerQuantizerOptions o = options(k.propagation);
    o.settings.experts_per_group = k.per_group;
    std::map<std::string, int> released;
    std::mutex mutex;
    o.release_mapped = [&](const std::string& name) {
      const std::lock_guard<std::mutex> lock(mutex);
      ++released[name];
    };
    quantize_layer(config_, kLayer, raw(), r.steps, anti_pass ? &anti : nullptr, calib, o, times);
    for (const ModuleId& id : model::layer_linears(config_, kLayer)) {
      const std::string name = model::hf_weight_name(id);
      const int expected = id.role == ModuleRole::kRouter ? 0 : !id.is_expert() ? 1 : k.expert_releases;
      EXPECT_EQ(released.count(name) > 0 ? released.at(name) : 0, expected) << name;
    }
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0);
}

// The α/β search spreads row blocks, and weight quantization the linears, over the threads: the layer must come
// out the same, bit for bit, at any thread count.
TEST_F(LayerQuantizerTest, W4A8LayerIsTheSameAtAnyThreadCount) {
  const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-30b-w4a8.yaml");
  const auto run = [&](int threads) {
    const testing::ScopedThreads scoped(threads);
    ActivationSet calib = embedded();
    PhaseTimes times;
    return quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, options(quant::Propagation::kFloat),
                          times);
  };
  const QuantizedLayer one = run(1), three = run(3);
  ASSERT_EQ(one.smoothing.size(), three.smoothing.size());
  for (std::size_t i = 0; i < one.smoothing.size(); ++i) {
    EXPECT_EQ(one.smoothing[i].alpha, three.smoothing[i].alpha) << one.smoothing[i].subgraph;
    EXPECT_EQ(one.smoothing[i].beta, three.smoothing[i].beta) << one.smoothing[i].subgraph;
    EXPECT_EQ(one.smoothing[i].search_error, three.smoothing[i].search_error) << one.smoothing[i].subgraph;
  }
  ASSERT_EQ(one.linears.size(), three.linears.size());
  for (const auto& [id, a] : one.linears) {
    const quant::QuantizedLinear& b = three.linears.at(id);
    EXPECT_EQ(a.scheme, b.scheme) << model::hf_module_name(id);
    EXPECT_TRUE(same_bytes(a.weight, b.weight)) << model::hf_module_name(id);
    EXPECT_TRUE(same_bytes(a.weight_scale, b.weight_scale)) << model::hf_module_name(id);
  }
}

bool same_layer(const QuantizedLayer& a, const QuantizedLayer& b) {
  bool same = a.relative_error == b.relative_error && a.expert_tokens == b.expert_tokens &&
              a.linears.size() == b.linears.size() && a.norms.size() == b.norms.size();
  for (const auto& [id, l] : a.linears) {
    const quant::QuantizedLinear& m = b.linears.at(id);
    for (const auto& [x, y] : {std::pair{&l.weight, &m.weight}, {&l.weight_scale, &m.weight_scale}, {&l.bias, &m.bias},
                               {&l.input_scale, &m.input_scale}, {&l.input_offset, &m.input_offset}}) {
      if (!same_bytes(*x, *y)) {
        ADD_FAILURE() << model::hf_module_name(id) << " differs";
        same = false;
      }
    }
  }
  for (const auto& [id, n] : a.norms) same = same && same_bytes(n.weight, b.norms.at(id).weight);
  return same;
}

// The passes run a MoE layer's experts a group at a time: the layer must come out the same, bit for bit, for
// any group size (model/grouped_layer_pass tests the pass at more sizes), with quantized propagation and static
// calibration (W8A8), with float propagation and MoE smoothing (W4A8-plus), with the experts rotated as
// they are read (--rot), and with GPTQ fitting each group's experts to its rows of the pass.
TEST_F(LayerQuantizerTest, TheLayerIsTheSameForAnyExpertGroupSize) {
  for (const std::string recipe_file :
       {"qwen3-moe-w8a8.yaml", "qwen3-30b-w4a8-plus.yaml", "rot+qwen3-moe-w8a8.yaml", "qwen3-moe-w4a8-rot-gptq.yaml"}) {
    const bool rotated = recipe_file.starts_with("rot+");
    recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / recipe_file.substr(rotated ? 4 : 0));
    if (rotated) r.steps.insert(r.steps.begin(), quant::default_rotate_step());  // as --rot does
    const quant::Propagation propagation = r.defaults.propagation;
    const auto run = [&](std::int64_t per_group, Tensor& hidden) {
      ActivationSet anti = embedded(), calib = embedded();
      if (propagation == quant::Propagation::kFloat) calib.batch_size = 1;
      PhaseTimes times;
      LayerQuantizerOptions o = options(propagation);
      o.settings.experts_per_group = per_group;
      const testing::ScopedThreads scoped(2);
      QuantizedLayer q = quantize_layer(config_, kLayer, raw(), r.steps,
                                        r.defaults.statistics_on_anti_set ? &anti : nullptr, calib, o, times);
      hidden = calib.hidden;
      return q;
    };
    Tensor whole_hidden, grouped_hidden;
    const QuantizedLayer whole = run(0, whole_hidden), grouped = run(3, grouped_hidden);
    EXPECT_TRUE(same_layer(whole, grouped)) << recipe_file;
    EXPECT_TRUE(same_bits(whole_hidden, grouped_hidden)) << recipe_file;
  }
}

// The sink gets the layer in the writer's order, the experts a group at a time while the layer runs.
TEST_F(LayerQuantizerTest, TheSinkGetsTheLayerInWriteOrder) {
  struct RecordingSink final : LayerSink {
    std::vector<std::string> names;
    void linear(quant::QuantizedLinear l) override { names.push_back(model::hf_module_name(l.module)); }
    void norm(quant::NormTensors n) override { names.push_back(model::hf_module_name(n.module)); }
  } sink;
  const recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-30b-w4a8.yaml");
  ActivationSet calib = embedded();
  PhaseTimes times;
  LayerQuantizerOptions o = options(quant::Propagation::kFloat);
  o.settings.experts_per_group = 4;
  const QuantizedLayer q = quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, o, times, &sink);
  EXPECT_TRUE(q.linears.empty());
  EXPECT_TRUE(q.norms.empty());
  std::vector<std::string> expected;
  const std::vector<ModuleId> linears = model::layer_linears(config_, kLayer);
  const std::vector<ModuleId> norms = model::layer_norms(kLayer);
  for (std::size_t i = 0; i < 4; ++i) expected.push_back(model::hf_module_name(linears[i]));  // q, k, v, o
  expected.push_back(model::hf_module_name(norms[0]));
  expected.push_back(model::hf_module_name(norms[1]));
  for (std::size_t i = 4; i < linears.size(); ++i) expected.push_back(model::hf_module_name(linears[i]));
  expected.push_back(model::hf_module_name(norms[2]));
  expected.push_back(model::hf_module_name(norms[3]));
  EXPECT_EQ(sink.names, expected);
  EXPECT_EQ(times.seconds.count("writing"), 1u);
}

// MoE smoothing rescales the experts' input (post_attention_layernorm) and plans each expert's weight to
// follow; an expert the recipe leaves float must follow too, or the layer computes something else.
TEST_F(LayerQuantizerTest, ExpertsLeftFloatTakeTheSmoothingPlannedForThem) {
  const recipe::Recipe r = recipe_from(
      "apiversion: modelslim_v1\nprocess:\n"
      "  - smooth: {method: flex_smooth, subgraphs: [norm-linear, ov, moe-input, up-down], alpha: 0.5}\n"
      "  - quantize:\n      - {include: ['*self_attn*'], scheme: w8a8_dynamic}\n");
  ActivationSet calib = embedded();
  calib.batch_size = 1;
  PhaseTimes times;
  const QuantizedLayer q =
      quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, options(quant::Propagation::kFloat), times);
  EXPECT_LT(q.relative_error, 0.1) << "only attention is quantized";
  const ModuleId up = ModuleId::expert_proj(kLayer, ModuleRole::kUpProj, 0);
  const quant::QuantizedLinear& l = q.linears.at(up);
  EXPECT_EQ(l.scheme, QuantScheme::kFloat);
  const Tensor original = raw().at(model::hf_weight_name(up)).to_f32();
  EXPECT_FALSE(std::equal(original.data<float>(), original.data<float>() + original.numel(), l.weight.to_f32().data<float>()))
      << "the written float weight carries the smoothing";
}

// A step that exists only here: it records the order of its hooks, checks what it asked for arrived, zeroes
// expert 0's up_proj through a deferred edit, and counts the rows its calibration pass sees.
struct Probe {
  std::vector<std::string> events;
  std::int64_t stats_rows = 0;       // o_proj input rows seen on the float pass
  std::int64_t input_rows = 0;       // k_proj input rows kept
  std::int64_t calibration_rows = 0; // q_proj input rows seen on the quantized pass
  std::set<ModuleId> finished;              // modules its calibration pass was told are done
  std::vector<model::ExpertRange> groups;  // apply_to_experts, in call order
  std::int64_t expert_input_rows = 0;      // rows its groups' experts see in the quantized pass
};

class ProbeStep final : public quant::LayerStep {
 public:
  explicit ProbeStep(Probe& probe) : probe_(probe) {}
  std::string name() const override { return "probe"; }
  nlohmann::ordered_json settings() const override { return nlohmann::ordered_json::object(); }
  std::string phase() const override { return "probe"; }
  bool observes() const override { return true; }

  void before_float_pass(quant::LayerContext&) const override { probe_.events.push_back("before_float_pass"); }
  void request(const quant::LayerContext& c, quant::ObservationRequest& r) const override {
    probe_.events.push_back("request");
    r.channel_stats.insert({c.layer, ModuleRole::kOProj});
    r.input_rows.insert({c.layer, ModuleRole::kKProj});
  }
  void apply(quant::LayerContext& c) const override {
    probe_.events.push_back("apply");
    probe_.stats_rows = c.observations->stats({c.layer, ModuleRole::kOProj}).rows_observed();
    probe_.input_rows = c.observations->rows({c.layer, ModuleRole::kKProj}).dim(0);
    EXPECT_TRUE(c.linears.empty()) << "the probe runs before quantize";
    c.deferred_edits.push_back([](const ModuleId& m, const Tensor& w) {
      if (m != ModuleId::expert_proj(m.layer, ModuleRole::kUpProj, 0)) return w;
      return Tensor::zeros(DType::kF32, w.shape());
    });
  }

  void apply_to_experts(quant::LayerContext& c, model::ExpertRange group) const override {
    EXPECT_EQ(c.linears.count(ModuleId::expert_proj(c.layer, ModuleRole::kUpProj, group.first)), 0u)
        << "the probe runs before quantize";
    probe_.groups.push_back(group);
    ASSERT_NE(c.expert_inputs, nullptr);
    for (std::int64_t e = group.first; e < group.last; ++e) probe_.expert_input_rows += c.expert_inputs->rows(e);
  }

  class Pass final : public quant::CalibrationPass {
   public:
    explicit Pass(Probe& probe) : probe_(probe) {}
    std::unique_ptr<model::Linear> linear_for(const ModuleId&, const quant::QuantizedLinear&) override {
      return nullptr;
    }
    bool wants_linear_input(const ModuleId& m) const override { return m.role == ModuleRole::kQProj; }
    void on_linear_input(const ModuleId&, const float*, std::int64_t rows, std::int64_t, const std::uint8_t* real)
        override {
      for (std::int64_t r = 0; r < rows; ++r) probe_.calibration_rows += real[r];
    }
    void finish(quant::LayerContext& c, const std::vector<ModuleId>& modules) override {
      for (const ModuleId& m : modules) {
        EXPECT_EQ(c.linears.count(m), 1u) << model::hf_module_name(m) << " is finished while it is quantized";
        EXPECT_TRUE(probe_.finished.insert(m).second) << model::hf_module_name(m) << " is finished once";
      }
    }

   private:
    Probe& probe_;
  };
  std::unique_ptr<quant::CalibrationPass> calibration(const quant::LayerContext&) const override {
    probe_.events.push_back("calibration");
    return std::make_unique<Pass>(probe_);
  }

 private:
  Probe& probe_;
};

TEST_F(LayerQuantizerTest, ATestOnlyStepGetsWhatItRequestsInOrder) {
  recipe::Recipe r = recipe_from(
      "apiversion: modelslim_v1\nprocess:\n  - quantize:\n"
      "      - {include: ['*'], exclude: ['*.mlp.gate'], scheme: w8a8_dynamic}\n");
  Probe probe;
  r.steps.insert(r.steps.begin(), std::make_shared<ProbeStep>(probe));
  ActivationSet calib = embedded();
  PhaseTimes times;
  LayerQuantizerOptions o = options(quant::Propagation::kFloat);
  o.settings.experts_per_group = 3;
  const QuantizedLayer q = quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, o, times);

  EXPECT_EQ(probe.events, (std::vector<std::string>{"before_float_pass", "request", "apply", "calibration"}));
  EXPECT_EQ(probe.stats_rows, real_tokens());
  EXPECT_EQ(probe.input_rows, real_tokens());
  EXPECT_EQ(probe.calibration_rows, real_tokens());
  const std::vector<ModuleId> all = model::layer_linears(config_, kLayer);
  EXPECT_EQ(probe.finished, std::set<ModuleId>(all.begin(), all.end()));
  EXPECT_EQ(probe.expert_input_rows, real_tokens() * config_.num_experts_per_tok);  // packed: no pads
  ASSERT_EQ(static_cast<std::int64_t>(probe.groups.size()), (config_.num_experts + 2) / 3);
  for (std::size_t i = 0; i < probe.groups.size(); ++i) {
    EXPECT_EQ(probe.groups[i].first, static_cast<std::int64_t>(3 * i));
    EXPECT_EQ(probe.groups[i].last, std::min<std::int64_t>(3 * static_cast<std::int64_t>(i) + 3, config_.num_experts));
  }
  const auto zeroed = q.linears.at(ModuleId::expert_proj(kLayer, ModuleRole::kUpProj, 0)).weight;
  const auto kept = q.linears.at(ModuleId::expert_proj(kLayer, ModuleRole::kUpProj, 1)).weight;
  const auto nonzero = [](const Tensor& t) {
    return std::count_if(t.data<std::int8_t>(), t.data<std::int8_t>() + t.numel(), [](std::int8_t v) { return v != 0; });
  };
  EXPECT_EQ(nonzero(zeroed), 0) << "the deferred edit reaches the quantized weight";
  EXPECT_GT(nonzero(kept), 0) << "and only the module it names";
  EXPECT_EQ(times.seconds.count("probe"), 1u);
}

TEST_F(LayerQuantizerTest, AStaticLinearWithoutCalibrationIsAnInternalError) {
  recipe::Recipe r = recipe::load_recipe(source_dir() / "configs" / "qwen3_moe" / "qwen3-moe-w8a8.yaml");
  r.steps.pop_back();  // drop static_calibration
  r.remove_smoothing();
  ActivationSet calib = embedded();
  PhaseTimes times;
  EXPECT_THROW(
      quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, options(quant::Propagation::kQuantized), times),
      Error);
}

}  // namespace
}  // namespace moeslim::pipeline
