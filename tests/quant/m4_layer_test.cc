// m4 on a real decoder layer: layer 0 of the bundled outlier fixture, statistics from calibration prompts.
// Smoothing is an equivalence (§3.5, §3.6), so the smoothed float layer must reproduce the unsmoothed layer's
// output to float tolerance when no bf16 rounding is applied, and closely with the spec's bf16 roundings —
// while flattening the q_proj input's outlier channels, which is the point of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "common/test_paths.h"
#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/layer_statistics.h"
#include "quant/m4_smoothing.h"
#include "quant/step.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

namespace moeslim::quant {
namespace {

const model::ModuleId kQProj{0, model::ModuleRole::kQProj};
const model::ModuleId kOProj{0, model::ModuleRole::kOProj};

constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();

double relative_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d;
    den += static_cast<double>(b.data<float>()[i]) * b.data<float>()[i];
  }
  return std::sqrt(num / den);
}

// max over channels / median over channels of a per-channel statistic: how outlier-dominated an input is.
double outlier_ratio(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.back() / v[v.size() / 2];
}

class M4Layer : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = testing::source_dir() / "models" / "tiny-qwen3-moe-outliers";
    config_ = model::ModelConfig::load(dir);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(dir));
    const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(dir);
    const auto prompts = text::read_text_dataset(testing::bundled_data_dir() / "qwen3-moe_anti_prompt_50.json");
    for (std::size_t i = 0; i < 6; ++i) {
      const auto ids = tokenizer.encode(prompts[i]);
      tokens_.ids.insert(tokens_.ids.end(), ids.begin(), ids.end());
      tokens_.layout.add_sequence(static_cast<std::int64_t>(ids.size()));
    }
    raw_ = model::read_layer_tensors(*checkpoint_, config_, 0);
    input_ = model::embed(checkpoint_->tensor("model.embed_tokens.weight"), tokens_.ids);
  }

  // The layer's output on input_, observing with `observer`.
  Tensor run(const model::LayerTensors& t, model::ForwardObserver* observer) const {
    Tensor h = input_.clone();
    const model::DecoderLayer layer = model::build_float_layer(config_, 0, t, model::FloatPrecision::kF32);
    model::run_layer_chunked(config_, layer, h, tokens_.layout, kNoLimit, 2, observer);
    return h;
  }

  // The layer's output on input_, with the channel statistics of `modules`' inputs collected as the layer
  // quantizer collects them.
  Tensor observe(const model::LayerTensors& t, const std::set<model::ModuleId>& modules, LayerObservations& out) const {
    ObservationRequest request;
    request.channel_stats = modules;
    pipeline::ObservationCollector collector(request, false, tokens_.layout.real_rows());
    const Tensor h = run(t, &collector);
    collector.take(out);
    return h;
  }

  // The layer smoothed with m4 in `dtype`, as the pipeline wires it (v->o first, then norm->q/k/v).
  model::LayerTensors smoothed(const LayerObservations& stats, DType dtype) const {
    model::LayerTensors t = raw_;
    const std::string p = "model.layers.0.";
    for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      Tensor& w = t.at(p + "self_attn." + m + ".weight");
      w = w.to_f32();
    }
    SmoothOptions o;
    o.float_dtype = dtype;
    smooth_v_to_o(t.at(p + "self_attn.v_proj.weight"), t.at(p + "self_attn.o_proj.weight"),
                  stats.stats(kOProj), config_.num_attention_heads, config_.num_key_value_heads,
                  config_.head_dim, o);
    NormLinearSmoothing s = smooth_norm_to_linears(
        t.at(p + "input_layernorm.weight").to_f32(),
        {&t.at(p + "self_attn.q_proj.weight"), &t.at(p + "self_attn.k_proj.weight"),
         &t.at(p + "self_attn.v_proj.weight")},
        stats.stats(kQProj), o);
    t[p + "input_layernorm.weight"] = s.norm_weight;
    t[p + "input_layernorm.bias"] = s.norm_bias;
    t[p + "self_attn.q_proj.bias"] = s.linear_biases[0];
    t[p + "self_attn.k_proj.bias"] = s.linear_biases[1];
    t[p + "self_attn.v_proj.bias"] = s.linear_biases[2];
    return t;
  }

  model::ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  model::TokenSet tokens_;
  model::LayerTensors raw_;
  Tensor input_;
};

TEST_F(M4Layer, SmoothedLayerReproducesTheFloatLayer) {
  LayerObservations stats;
  const Tensor reference = observe(raw_, {kQProj, kOProj}, stats);

  const model::LayerTensors exact = smoothed(stats, DType::kF32);
  const double exact_error = relative_l2(run(exact, nullptr), reference);
  EXPECT_LT(exact_error, 1e-5) << "float32 smoothing must be an equivalence";
  // The shift is real: the norm gained a non-zero bias and q/k/v biases W·shift.
  const Tensor& norm_bias = exact.at("model.layers.0.input_layernorm.bias");
  EXPECT_GT(*std::max_element(norm_bias.data<float>(), norm_bias.data<float>() + norm_bias.numel(),
                              [](float a, float b) { return std::fabs(a) < std::fabs(b); }),
            0.0f);

  // With the spec's bf16 roundings the layer stays close (weights and norm rounded to 8 significant bits).
  const double bf16_error = relative_l2(run(smoothed(stats, DType::kBF16), nullptr), reference);
  EXPECT_LT(bf16_error, 2e-2);
  std::printf("m4 on layer 0: relative L2 vs float layer %.3g (f32 arithmetic), %.3g (bf16 roundings)\n",
              exact_error, bf16_error);
}

TEST_F(M4Layer, SmoothingFlattensTheOutlierChannelsOfTheAttentionInput) {
  LayerObservations before, after;
  observe(raw_, {kQProj, kOProj}, before);
  observe(smoothed(before, DType::kBF16), {kQProj}, after);
  const double ratio_before = outlier_ratio(before.stats(kQProj).abs_max());
  const double ratio_after = outlier_ratio(after.stats(kQProj).abs_max());
  EXPECT_GT(ratio_before, 10.0) << "the fixture should have outlier channels";
  EXPECT_LT(ratio_after, ratio_before / 4) << ratio_before << " -> " << ratio_after;
}

}  // namespace
}  // namespace moeslim::quant
