// GPTQ in the layer quantizer: the Hessians it reads are those of the inputs each linear reads (attention on the
// float pass's rows as the smoothing changed them, an expert on its routed rows), starved experts fall back to
// the data-free method and are named, and on one real layer of each tiny model GPTQ's layer error is below SSZ's
// at the same scheme (v1) and below minmax's after m4 (v0).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/recipe_text.h"
#include "common/test_paths.h"
#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/calibration_data.h"
#include "pipeline/layer_quantizer.h"
#include "quant/linear_hessians.h"
#include "quant/v1_weight_quant.h"
#include "recipe/recipe.h"
#include "text/tokenizer.h"

namespace moeslim::pipeline {
namespace {

using model::ModuleId;
using model::ModuleRole;
using moeslim::testing::source_dir;
using moeslim::testing::TempDir;

constexpr std::int64_t kLayer = 1;  // holds the massive model's super expert

class GptqLayerTest : public ::testing::Test {
 protected:
  void load(const std::string& model) {
    const std::filesystem::path dir = source_dir() / "models" / model;
    config_ = model::ModelConfig::load(dir);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(dir));
    const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(dir);
    std::ifstream in(source_dir() / "data" / "qwen3-moe_calib_prompt_50.json");
    const nlohmann::json all = nlohmann::json::parse(in);
    std::ofstream(dir_.path() / "prompts.json") << nlohmann::json(std::vector<nlohmann::json>(all.begin(), all.begin() + 8));
    set_ = load_calibration_set(dir_.path() / "prompts.json", tokenizer, 2, false, config_.max_position_embeddings);
    embedding_ = checkpoint_->tensor("model.embed_tokens.weight");
  }
  void SetUp() override { load("tiny-qwen3-moe-outliers"); }

  ActivationSet embedded() const { return {model::embed(embedding_, set_.tokens.ids), &set_.tokens.layout, 1}; }
  model::LayerTensors raw() const { return model::read_layer_tensors(*checkpoint_, config_, kLayer); }
  recipe::Recipe recipe_from(const std::string& yaml) const { return moeslim::testing::load_recipe_text(dir_.path(), yaml); }
  // Layer kLayer quantized by `r` on the calibration set, its float passes in float32.
  QuantizedLayer quantize(const recipe::Recipe& r, quant::Propagation propagation) const {
    ActivationSet calib = embedded();
    PhaseTimes times;
    LayerQuantizerOptions o;
    o.propagation = propagation;
    o.settings.float_precision = model::FloatPrecision::kF32;
    return quantize_layer(config_, kLayer, raw(), r.steps, nullptr, calib, o, times);
  }

  TempDir dir_{"gptq_layer"};
  model::ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  CalibrationSet set_;
  Tensor embedding_;
};

// 2/n·Σ x xᵀ in double.
std::vector<double> gram(const std::vector<std::vector<double>>& rows) {
  const std::size_t n = rows.front().size();
  std::vector<double> h(n * n, 0.0);
  for (const auto& x : rows) {
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) h[i * n + j] += x[i] * x[j];
    }
  }
  for (double& v : h) v *= 2.0 / static_cast<double>(rows.size());
  return h;
}

// max |a − b| / max |b|.
double relative_difference(std::span<const float> a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

// Records the real input rows of some modules.
struct RowRecorder final : model::ForwardObserver {
  std::map<ModuleId, std::vector<std::vector<double>>> rows;
  bool wants_linear_input(const ModuleId& m) const override { return rows.count(m) > 0; }
  void on_linear_input(const ModuleId& m, const float* x, std::int64_t n, std::int64_t cols,
                       const std::uint8_t* real) override {
    for (std::int64_t r = 0; r < n; ++r) {
      if (real[r] != 0) rows[m].emplace_back(x + r * cols, x + (r + 1) * cols);
    }
  }
};

// Attention Hessians come from the float pass's input rows, carried to the input the linear reads after the
// smoothing steps changed it (LayerContext::input_changes): k_proj's input shifted, divided and shifted again
// (m4's shift and a later division, in the units each applies to), o_proj's divided.
TEST_F(GptqLayerTest, AttentionHessiansAreThoseOfTheFloatPassRowsAsSmoothingChangedThem) {
  const ActivationSet set = embedded();
  const ModuleId q{kLayer, ModuleRole::kQProj}, k{kLayer, ModuleRole::kKProj}, o{kLayer, ModuleRole::kOProj};
  RowRecorder recorder;
  recorder.rows[k];  // q, k and v_proj read one input: k_proj's stands for it
  recorder.rows[o];
  ActivationSet copy{set.hidden.clone(), set.layout, set.batch_size};
  run_layer(config_, model::build_float_layer(config_, kLayer, raw(), model::FloatPrecision::kF32), copy, &recorder);

  quant::LayerObservations observations;
  for (const ModuleId& m : {k, o}) {
    const auto& rows = recorder.rows.at(m);
    Tensor t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())});
    for (std::size_t r = 0; r < rows.size(); ++r) {
      std::copy(rows[r].begin(), rows[r].end(), t.mutable_data<float>() + r * rows[0].size());
    }
    observations.input_rows.emplace(m, std::move(t));
  }
  quant::LayerContext c(config_, kLayer, raw(), {.float_precision = model::FloatPrecision::kF32});
  c.observations = &observations;
  const auto channels = [](std::int64_t n, float base, int period) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (std::size_t j = 0; j < v.size(); ++j) v[j] = base + static_cast<float>(j % period);
    return v;
  };
  const std::vector<float> s = channels(config_.hidden_size, 0.5f, 7), t1 = channels(config_.hidden_size, -0.3f, 5),
                           t2 = channels(config_.hidden_size, 0.1f, 3), so = channels(config_.q_width(), 0.25f, 4);
  quant::shift_input(c, k, t1);
  quant::divide_input(c, k, s);
  quant::shift_input(c, k, t2);
  quant::divide_input(c, o, so);
  const quant::LinearHessians h = quant::layer_input_hessians(c, {q, k, o});
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.at(q), h.at(k)) << "q and k_proj read one input: one Hessian";
  EXPECT_EQ(h.at(q)->rows, set.layout->real_rows());

  std::vector<std::vector<double>> k_rows = recorder.rows.at(k), o_rows = recorder.rows.at(o);
  for (auto& row : k_rows) {
    for (std::size_t j = 0; j < row.size(); ++j) row[j] = (row[j] - t1[j]) / s[j] - t2[j];
  }
  for (auto& row : o_rows) {
    for (std::size_t j = 0; j < row.size(); ++j) row[j] /= so[j];
  }
  EXPECT_LT(relative_difference(h.at(q)->values, gram(k_rows)), 1e-5);
  EXPECT_LT(relative_difference(h.at(o)->values, gram(o_rows)), 1e-5);
}

// One chunk of `rows` rows whose routing sends rows_of[e] to expert e, as the grouped pass shows it.
struct HandRouted {
  HandRouted(std::int64_t rows, const std::vector<std::uint8_t>& real, std::int64_t experts,
             const std::map<std::int64_t, std::vector<std::int32_t>>& rows_of, std::int64_t hidden)
      : normed(Tensor::zeros(DType::kF32, {rows, hidden})) {
    layout.add_sequence(rows, real.data());
    routing.rows_of.resize(static_cast<std::size_t>(experts));
    routing.weight_of.resize(static_cast<std::size_t>(experts));
    for (const auto& [e, r] : rows_of) {
      routing.rows_of[static_cast<std::size_t>(e)] = r;
      routing.weight_of[static_cast<std::size_t>(e)].assign(r.size(), 1.0f);
    }
    float* x = normed.mutable_data<float>();
    for (std::int64_t i = 0; i < rows * hidden; ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    chunks.push_back({0, &layout, &routing});
  }
  model::ExpertGroupInputs inputs() const { return {chunks, normed.data<float>(), normed.dim(1)}; }

  Tensor normed;
  model::TokenLayout layout;
  model::ExpertRouting routing;
  std::vector<model::RoutedChunk> chunks;
};

TEST_F(GptqLayerTest, ExpertHessiansAreOfItsRoutedRowsAndOfItsOwnIntermediateActivation) {
  const std::int64_t hidden = config_.hidden_size, expert = 2;
  const HandRouted routed(5, {1, 1, 1, 1, 0}, config_.num_experts, {{expert, {0, 3, 4}}}, hidden);
  const model::ExpertGroupInputs inputs = routed.inputs();
  quant::LayerContext c(config_, kLayer, raw(), {.float_precision = model::FloatPrecision::kF32});
  c.expert_inputs = &inputs;
  const ModuleId gate = ModuleId::expert_proj(kLayer, ModuleRole::kGateProj, expert);
  const ModuleId up = ModuleId::expert_proj(kLayer, ModuleRole::kUpProj, expert);
  const ModuleId down = ModuleId::expert_proj(kLayer, ModuleRole::kDownProj, expert);
  const quant::LinearHessians h =
      quant::expert_input_hessians(c, expert, {gate, up, down}, c.weight_to_quantize(gate), c.weight_to_quantize(up));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.at(gate), h.at(up));
  EXPECT_EQ(h.at(gate)->rows, 2) << "row 4 is a pad";

  // The reference in double: rows 0 and 3, through the expert's gate and up to down_proj's input.
  const Tensor wg = c.weight(gate).to_f32(), wu = c.weight(up).to_f32();
  const std::int64_t inter = wg.dim(0);
  std::vector<std::vector<double>> x, act;
  for (const std::int64_t r : {0, 3}) {
    const float* row = routed.normed.data<float>() + r * hidden;
    x.emplace_back(row, row + hidden);
    std::vector<double> a(static_cast<std::size_t>(inter));
    for (std::int64_t j = 0; j < inter; ++j) {
      double g = 0, u = 0;
      for (std::int64_t i = 0; i < hidden; ++i) {
        g += static_cast<double>(wg.data<float>()[j * hidden + i]) * row[i];
        u += static_cast<double>(wu.data<float>()[j * hidden + i]) * row[i];
      }
      a[static_cast<std::size_t>(j)] = g / (1.0 + std::exp(-g)) * u;
    }
    act.push_back(a);
  }
  EXPECT_LT(relative_difference(h.at(gate)->values, gram(x)), 1e-6);
  EXPECT_LT(relative_difference(h.at(down)->values, gram(act)), 1e-4);
}

TEST_F(GptqLayerTest, StarvedExpertsFallBackToTheDataFreeMethodAndAreNamed) {
  const recipe::Recipe r = recipe_from(
      "apiversion: modelslim_v1\nprocess:\n  - quantize:\n"
      "      - {include: ['*mlp.experts*'], scheme: w4a8_dynamic, weight: gptq, gptq_min_tokens: 3}\n");
  // Expert 0: one real row and a pad; expert 1: three real rows and a pad.
  const HandRouted routed(5, {1, 1, 1, 1, 0}, config_.num_experts, {{0, {3, 4}}, {1, {0, 1, 2, 4}}},
                          config_.hidden_size);
  const model::ExpertGroupInputs inputs = routed.inputs();
  quant::LayerContext c(config_, kLayer, raw(), {.float_precision = model::FloatPrecision::kF32});
  c.expert_inputs = &inputs;
  r.steps.at(0)->apply_to_experts(c, {0, 2});

  ASSERT_EQ(c.weight_fallbacks.size(), 3u) << "expert 0's gate, up and down_proj";
  for (std::size_t i = 0; i < 3; ++i) {
    const ModuleId m = model::expert_linears(kLayer, 0, 1)[i];
    EXPECT_EQ(c.weight_fallbacks[i].module, model::hf_module_name(m));
    EXPECT_EQ(c.weight_fallbacks[i].reason,
              "1 calibration token reached it, fewer than gptq_min_tokens (3); quantized with ssz");
    const quant::QuantizedLinear ssz = quant::quantize_linear_weight_v1(
        m, quant::QuantScheme::kW4A8Dynamic, c.weight(m), quant::V1WeightMethod::kSsz, {.float_dtype = DType::kBF16});
    const quant::QuantizedLinear& got = c.linears.at(m);
    EXPECT_EQ(0, std::memcmp(got.weight.bytes(), ssz.weight.bytes(), ssz.weight.nbytes()));
    EXPECT_EQ(0, std::memcmp(got.weight_scale.bytes(), ssz.weight_scale.bytes(), ssz.weight_scale.nbytes()));
  }
  const ModuleId fitted = ModuleId::expert_proj(kLayer, ModuleRole::kGateProj, 1);
  const quant::QuantizedLinear ssz = quant::quantize_linear_weight_v1(
      fitted, quant::QuantScheme::kW4A8Dynamic, c.weight(fitted), quant::V1WeightMethod::kSsz, {});
  EXPECT_NE(0, std::memcmp(c.linears.at(fitted).weight.bytes(), ssz.weight.bytes(), ssz.weight.nbytes()))
      << "expert 1 saw enough tokens for GPTQ";
}

// The same scheme and smoothing, SSZ against GPTQ weights: GPTQ's layer error is lower on every tiny model.
TEST_F(GptqLayerTest, GptqLayerErrorIsBelowSszsOnEveryTinyModel) {
  for (const std::string model : {"tiny-qwen3-moe", "tiny-qwen3-moe-outliers", "tiny-qwen3-moe-massive"}) {
    load(model);
    std::map<std::string, double> error;
    for (const std::string method : {"ssz", "gptq"}) {
      const recipe::Recipe r = recipe_from(
          "apiversion: modelslim_v1\nprocess:\n"
          "  - smooth: {method: flex_smooth, subgraphs: [norm-linear, ov]}\n"
          "  - quantize:\n"
          "      - {include: ['*self_attn*'], scheme: w8a8_dynamic, weight: " + method + "}\n"
          "      - {include: ['*mlp.experts*'], scheme: w4a8_dynamic, weight: " + method + "}\n");
      error[method] = quantize(r, quant::Propagation::kFloat).relative_error;
    }
    EXPECT_LT(error["gptq"], error["ssz"]) << model;
    std::cout << model << ": layer " << kLayer << " relative error ssz " << error["ssz"] << ", gptq "
              << error["gptq"] << "\n";
  }
}

// v0 recipes: after m4 (whose shift changes q/k/v_proj's input), with static W8A8 attention and W8A8_DYNAMIC
// experts on v0's int8 grid, GPTQ's layer error is below minmax's on every tiny model, and the linears are v0's:
// codes within ±127, m4's biases kept, the static activation parameters fitted to GPTQ's codes.
TEST_F(GptqLayerTest, V0GptqLayerErrorIsBelowMinmaxsAfterM4OnEveryTinyModel) {
  for (const std::string model : {"tiny-qwen3-moe", "tiny-qwen3-moe-outliers", "tiny-qwen3-moe-massive"}) {
    load(model);
    std::map<std::string, QuantizedLayer> layers;
    for (const std::string method : {"minmax", "gptq"}) {
      const recipe::Recipe r = recipe_from(
          "apiversion: modelslim_v0\nprocess:\n"
          "  - smooth: {method: m4, subgraphs: [norm-linear, ov]}\n"
          "  - quantize:\n"
          "      - {include: ['*.mlp.*'], exclude: ['*.mlp.gate'], scheme: w8a8_dynamic, weight: " + method + "}\n"
          "      - {include: ['*'], exclude: ['*.mlp.gate'], scheme: w8a8, weight: " + method + "}\n");
      layers[method] = quantize(r, quant::Propagation::kQuantized);
    }
    const QuantizedLayer &gptq = layers.at("gptq"), &minmax = layers.at("minmax");
    EXPECT_LT(gptq.relative_error, minmax.relative_error) << model;
    std::cout << model << ": v0 layer " << kLayer << " relative error minmax " << minmax.relative_error << ", gptq "
              << gptq.relative_error << "\n";
    EXPECT_TRUE(gptq.weight_fallbacks.empty()) << model;
    for (const auto& [module, linear] : gptq.linears) {
      if (linear.scheme == quant::QuantScheme::kFloat) continue;
      const std::int8_t* w = linear.weight.data<std::int8_t>();
      EXPECT_GE(*std::min_element(w, w + linear.weight.numel()), -127) << model::hf_module_name(module);
      EXPECT_EQ(linear.bias.empty(), minmax.linears.at(module).bias.empty()) << model::hf_module_name(module);
    }
    const quant::QuantizedLinear& q = gptq.linears.at({kLayer, ModuleRole::kQProj});
    ASSERT_EQ(q.scheme, quant::QuantScheme::kW8A8);
    EXPECT_FALSE(q.bias.empty()) << "m4's W·shift";
    EXPECT_FALSE(q.quant_bias.empty()) << "static activation parameters fitted";
    EXPECT_NE(0, std::memcmp(q.weight.bytes(), minmax.linears.at({kLayer, ModuleRole::kQProj}).weight.bytes(),
                             q.weight.nbytes()));
  }
}

}  // namespace
}  // namespace moeslim::pipeline
