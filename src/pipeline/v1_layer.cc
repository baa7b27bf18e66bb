#include "pipeline/v1_layer.h"

#include <memory>

#include "core/error.h"
#include "core/interrupt.h"
#include "model/quantized_linear.h"
#include "pipeline/expert_smoothing.h"
#include "pipeline/layer_common.h"
#include "pipeline/layer_statistics.h"
#include "quant/flex_smoothing.h"
#include "quant/v1_weight_quant.h"

namespace moeslim::pipeline {
namespace {

using Clock = PhaseTimes::Clock;
using nlohmann::ordered_json;

struct AlphaBeta {
  double alpha, beta;
};

// The recipe's α/β, or §6.3's search over the observed rows and the subgraph's current weights.
AlphaBeta choose_alpha_beta(const recipe::SmoothStep& step, const InputRowCollector& rows, const std::string& module,
                            const std::vector<const Tensor*>& weights, const LayerOptions& options,
                            ordered_json& report) {
  if (step.alpha) {
    const AlphaBeta ab{*step.alpha, step.beta.value_or(1.0 - *step.alpha)};
    report = {{"alpha", ab.alpha}, {"beta", ab.beta}, {"searched", false}};
    return ab;
  }
  quant::FlexSearchOptions search;
  search.max_rows = options.search_rows;
  const quant::FlexSearchResult r =
      quant::search_flex_alpha_beta(rows.rows(module), weights, options.float_dtype, search);
  report = {{"alpha", r.alpha}, {"beta", r.beta}, {"searched", true}, {"error", r.error}};
  return {r.alpha, r.beta};
}

quant::V1WeightMethod weight_method(recipe::WeightMethod m) {
  return m == recipe::WeightMethod::kSsz ? quant::V1WeightMethod::kSsz : quant::V1WeightMethod::kMinMax;
}

}  // namespace

QuantizedLayer quantize_v1_layer(const model::ModelConfig& config, std::int64_t layer,
                                 const model::LayerTensors& raw, ActivationSet& calib, const LayerOptions& options,
                                 PhaseTimes& times) {
  const recipe::Recipe& recipe = *options.recipe;
  const recipe::SmoothStep* smooth = recipe.smooth ? &*recipe.smooth : nullptr;
  const bool flex = smooth != nullptr && smooth->method == recipe::SmoothMethod::kFlexSmooth;
  const bool norm_linear = flex && smooth->has(recipe::Subgraph::kNormLinear);
  const bool ov = flex && smooth->has(recipe::Subgraph::kOv);
  const std::string p = model::layer_prefix(layer);
  const std::string k_proj = p + "self_attn.k_proj", o_proj = p + "self_attn.o_proj";
  QuantizedLayer out;

  // Float pass: statistics, routing, and the float outputs that become the next layer's inputs.
  auto start = Clock::now();
  std::vector<std::string> watched = expert_smoothing_inputs(config, layer, smooth);
  std::vector<std::string> row_modules;
  if (norm_linear) watched.push_back(k_proj);
  if (ov) watched.push_back(o_proj);
  if (norm_linear && !smooth->alpha) row_modules.push_back(k_proj);
  if (ov && !smooth->alpha) row_modules.push_back(o_proj);
  ChannelStatsCollector stats(watched, false);
  InputRowCollector rows(row_modules);
  ExpertTokenCounter tokens(config.is_moe_layer(layer) ? config.num_experts : 0);
  ObserverFanOut observers({&stats, &rows, &tokens});
  const Tensor input = calib.hidden.clone();
  {
    const model::DecoderLayer float_layer = model::build_float_layer(config, layer, raw, options.float_precision);
    run_layer(config, float_layer, calib, &observers);
  }
  out.expert_tokens = tokens.counts();
  times.add("float pass", start);

  // Smoothing (§6.3: ov before norm-linear; the norm-linear search sees v_proj as ov left it).
  start = Clock::now();
  model::LayerTensors t = with_editable_attention(raw, layer);
  Tensor& wq = t.at(p + "self_attn.q_proj.weight");
  Tensor& wk = t.at(p + "self_attn.k_proj.weight");
  Tensor& wv = t.at(p + "self_attn.v_proj.weight");
  Tensor& wo = t.at(p + "self_attn.o_proj.weight");
  if (ov) {
    const AlphaBeta ab = choose_alpha_beta(*smooth, rows, o_proj, {&wo}, options, out.smoothing["ov"]);
    quant::flex_smooth_ov(wv, wo, stats.stats(o_proj).abs_max(), config.num_attention_heads,
                          config.num_key_value_heads, config.head_dim, ab.alpha, ab.beta, options.float_dtype);
  }
  if (norm_linear) {
    const AlphaBeta ab = choose_alpha_beta(*smooth, rows, k_proj, {&wk, &wq, &wv}, options, out.smoothing["norm-linear"]);
    quant::flex_smooth_norm_linear(t.at(p + "input_layernorm.weight"), {&wk, &wq, &wv}, stats.stats(k_proj).abs_max(),
                                   ab.alpha, ab.beta, options.float_dtype);
  }
  ExpertSmoothing experts;
  if (smooth != nullptr) {
    experts = plan_expert_smoothing(config, layer, t, stats, *smooth, options.float_dtype, out.smoothing);
  }
  times.add("smoothing", start);

  // Weight quantization: data-free.
  start = Clock::now();
  std::map<std::string, std::size_t> index_of;
  for (const std::string& module : model::layer_linear_modules(config, layer)) {
    throw_if_interrupted();  // a layer has hundreds of experts: stop between them
    const Tensor& w = t.at(module + ".weight");
    index_of[module] = out.linears.size();
    const recipe::QuantGroup* group = recipe.group_for(module);  // never the router: recipes refuse that
    if (group == nullptr) {
      out.linears.push_back(float_linear(module, w, Tensor()));
      continue;
    }
    quant::V1WeightOptions wo_options;
    wo_options.bits = group->scheme == quant::QuantScheme::kW4A8Dynamic ? quant::WeightBits::kInt4
                                                                       : quant::WeightBits::kInt8;
    wo_options.float_dtype = options.float_dtype;
    wo_options.ssz_steps = group->ssz_steps;
    out.linears.push_back(quant::quantize_linear_weight_v1(
        module, group->scheme, smoothed_expert_weight(module, w, experts, options.float_dtype),
        weight_method(group->weight), wo_options));
  }
  times.add("weight quantization", start);

  // The quantized layer on the same inputs, as the runtime computes it.
  start = Clock::now();
  {
    const model::DecoderLayer quantized = model::build_layer(
        config, layer, t, [&](const std::string& module, const Tensor&, const Tensor&) {
          const quant::QuantizedLinear& q = out.linears.at(index_of.at(module));
          if (q.scheme == quant::QuantScheme::kFloat) {
            return model::make_float_linear(q.weight, q.bias, model::FloatPrecision::kF32);
          }
          return model::make_w8a8_dynamic_linear(q.weight, q.weight_scale);  // int4 codes are unpacked here
        });
    ActivationSet check{input.clone(), calib.layout, calib.batch_size};
    run_layer(config, quantized, check, nullptr);
    out.relative_error = relative_update_error(check.hidden, calib.hidden, input, *calib.layout);
  }
  times.add("quantized check", start);

  for (const std::string& norm : model::layer_norm_modules(layer)) out.norms.push_back(norm_tensors(t, norm, false));
  return out;
}

}  // namespace moeslim::pipeline
