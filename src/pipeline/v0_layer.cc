#include "pipeline/v0_layer.h"

#include <memory>

#include "core/error.h"
#include "core/interrupt.h"
#include "model/quantized_linear.h"
#include "pipeline/expert_smoothing.h"
#include "pipeline/layer_common.h"
#include "pipeline/layer_statistics.h"
#include "quant/calibration_linear.h"
#include "quant/linear_quantizer.h"
#include "quant/m4_smoothing.h"

namespace moeslim::pipeline {
namespace {

using Clock = PhaseTimes::Clock;

// m4 (§3) on float32 copies of the attention weights and the input norm; adds the norm bias and q/k/v biases.
void apply_m4(const model::ModelConfig& c, std::int64_t layer, model::LayerTensors& t,
              const ChannelStatsCollector& stats, double alpha, DType float_dtype) {
  const std::string p = model::layer_prefix(layer);
  quant::SmoothOptions o;
  o.alpha = static_cast<float>(alpha);
  o.float_dtype = float_dtype;
  quant::smooth_v_to_o(t.at(p + "self_attn.v_proj.weight"), t.at(p + "self_attn.o_proj.weight"),
                       stats.stats(p + "self_attn.o_proj"), c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                       o);
  std::vector<Tensor*> qkv = {&t.at(p + "self_attn.q_proj.weight"), &t.at(p + "self_attn.k_proj.weight"),
                              &t.at(p + "self_attn.v_proj.weight")};
  quant::NormLinearSmoothing s =
      quant::smooth_norm_to_linears(t.at(p + "input_layernorm.weight"), qkv, stats.stats(p + "self_attn.q_proj"), o);
  t[p + "input_layernorm.weight"] = s.norm_weight;
  t[p + "input_layernorm.bias"] = s.norm_bias;
  const char* names[] = {"q_proj", "k_proj", "v_proj"};
  for (std::size_t i = 0; i < 3; ++i) t[p + "self_attn." + names[i] + ".bias"] = s.linear_biases[i];
}

}  // namespace

QuantizedLayer quantize_v0_layer(const model::ModelConfig& config, std::int64_t layer,
                                 const model::LayerTensors& raw, ActivationSet& anti, ActivationSet& calib,
                                 const LayerOptions& options, PhaseTimes& times) {
  const recipe::Recipe& recipe = *options.recipe;
  const recipe::SmoothStep* smooth = recipe.smooth ? &*recipe.smooth : nullptr;
  const bool m4 = smooth != nullptr && smooth->method == recipe::SmoothMethod::kM4;
  const std::string p = model::layer_prefix(layer);
  QuantizedLayer out;

  // Float pass: anti statistics, and the reference output on the calibration set.
  auto start = Clock::now();
  std::vector<std::string> watched = expert_smoothing_inputs(config, layer, smooth);
  if (m4) {
    watched.push_back(p + "self_attn.q_proj");
    watched.push_back(p + "self_attn.o_proj");
  }
  ChannelStatsCollector stats(watched, options.include_padding);
  ActivationSet reference{calib.hidden.clone(), calib.layout, calib.batch_size};
  {
    const model::DecoderLayer float_layer = model::build_float_layer(config, layer, raw, options.float_precision);
    if (smooth != nullptr) run_layer(config, float_layer, anti, &stats);
    times.add("anti statistics", start);
    start = Clock::now();
    run_layer(config, float_layer, reference, nullptr);
    times.add("float reference", start);
  }

  // Smoothing edits float32 copies of the attention weights and the norms; the experts are smoothed one at a
  // time as they are quantized.
  start = Clock::now();
  model::LayerTensors t = with_editable_attention(raw, layer);
  ExpertSmoothing experts;
  if (m4) apply_m4(config, layer, t, stats, smooth->alpha.value_or(0.5), options.float_dtype);
  if (smooth != nullptr) {
    experts = plan_expert_smoothing(config, layer, t, stats, *smooth, options.float_dtype, out.smoothing);
  }
  times.add("smoothing", start);

  // Weight quantization (data-free for every linear: only the static activation parameters need data).
  start = Clock::now();
  const std::vector<std::string> modules = model::layer_linear_modules(config, layer);
  std::map<std::string, std::size_t> index_of;
  for (const std::string& module : modules) {
    throw_if_interrupted();  // a layer has hundreds of experts: stop between them
    const Tensor& w = t.at(module + ".weight");
    const auto bias_it = t.find(module + ".bias");
    const Tensor bias = bias_it == t.end() ? Tensor() : bias_it->second;
    index_of[module] = out.linears.size();
    const recipe::QuantGroup* group = recipe.group_for(module);  // never the router: recipes refuse that
    if (group == nullptr) {
      out.linears.push_back(float_linear(module, w, bias));
    } else {
      out.linears.push_back(quant::quantize_linear_weight(
          module, group->scheme, smoothed_expert_weight(module, w, experts, options.float_dtype), bias,
          options.float_dtype));
    }
  }
  times.add("weight quantization", start);

  // Calibration: the quantized layer, static linears observing each batch before computing it.
  start = Clock::now();
  CalibrationFeeder feeder;
  const model::DecoderLayer quantized = model::build_layer(
      config, layer, t, [&](const std::string& module, const Tensor& weight, const Tensor& bias) {
        const quant::QuantizedLinear& q = out.linears.at(index_of.at(module));
        if (q.scheme == quant::QuantScheme::kFloat) {
          return model::make_float_linear(q.weight, q.bias, model::FloatPrecision::kF32);
        }
        if (q.scheme == quant::QuantScheme::kW8A8) {
          auto linear = std::make_unique<quant::StaticCalibrationLinear>(q, options.include_padding, options.float_dtype);
          feeder.add(module, linear.get());
          return std::unique_ptr<model::Linear>(std::move(linear));
        }
        return model::make_w8a8_dynamic_linear(q.weight, q.weight_scale, q.bias);
      });
  ExpertTokenCounter tokens(config.is_moe_layer(layer) ? config.num_experts : 0);
  ObserverFanOut observers({&feeder, &tokens});
  const Tensor input = calib.hidden.clone();
  run_layer(config, quantized, calib, &observers);
  out.relative_error = relative_update_error(calib.hidden, reference.hidden, input, *calib.layout);
  for (const auto& [module, linear] : feeder.linears()) out.linears.at(index_of.at(module)) = linear->quantized();
  out.expert_tokens = tokens.counts();
  times.add("calibration", start);

  for (const std::string& norm : model::layer_norm_modules(layer)) out.norms.push_back(norm_tensors(t, norm, m4));
  return out;
}

}  // namespace moeslim::pipeline
