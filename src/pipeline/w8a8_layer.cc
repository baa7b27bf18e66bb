#include "pipeline/w8a8_layer.h"

#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "model/quantized_linear.h"
#include "pipeline/layer_statistics.h"
#include "quant/calibration_linear.h"
#include "quant/linear_quantizer.h"
#include "quant/m4_smoothing.h"

namespace moeslim::pipeline {
namespace {

using Clock = PhaseTimes::Clock;
constexpr std::int64_t kNoRowLimit = std::numeric_limits<std::int64_t>::max();

bool is_attention_linear(const std::string& module) { return module.find(".self_attn.") != std::string::npos; }
bool is_router(const std::string& module) {
  return module.size() >= 9 && module.compare(module.size() - 9, 9, ".mlp.gate") == 0;
}

void run(const model::ModelConfig& config, const model::DecoderLayer& layer, ActivationSet& set,
         model::ForwardObserver* observer) {
  model::run_layer_chunked(config, layer, set.hidden, *set.layout, kNoRowLimit, set.batch_size, observer);
}

// ‖quantized − reference‖ / ‖reference − input‖ over real rows: the quantization error relative to the layer's
// float update of the residual stream.
double relative_update_error(const Tensor& quantized, const Tensor& reference, const Tensor& input,
                             const model::TokenLayout& layout) {
  const std::int64_t cols = reference.dim(1);
  double err = 0, update = 0;
  const float* q = quantized.data<float>();
  const float* r = reference.data<float>();
  const float* x = input.data<float>();
  for (std::int64_t row = 0; row < reference.dim(0); ++row) {
    if (layout.real[static_cast<std::size_t>(row)] == 0) continue;
    for (std::int64_t c = row * cols; c < (row + 1) * cols; ++c) {
      err += (static_cast<double>(q[c]) - r[c]) * (static_cast<double>(q[c]) - r[c]);
      update += (static_cast<double>(r[c]) - x[c]) * (static_cast<double>(r[c]) - x[c]);
    }
  }
  return update > 0 ? std::sqrt(err / update) : 0.0;
}

// m4 (§3) on float32 copies of the attention weights and the input norm; adds the norm bias and q/k/v biases.
void apply_m4(const model::ModelConfig& c, std::int64_t layer, model::LayerTensors& t,
              const ChannelStatsCollector& stats, DType float_dtype) {
  const std::string p = model::layer_prefix(layer);
  quant::SmoothOptions o;
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

// NormBias (§3.2): every norm is written with a bias, zeros unless smoothing set one.
quant::NormTensors norm_tensors(const model::LayerTensors& t, const std::string& module, bool with_bias) {
  quant::NormTensors n{module, model::to_f32_vector(t.at(module + ".weight")), Tensor()};
  const auto it = t.find(module + ".bias");
  if (it != t.end()) {
    n.bias = it->second;
  } else if (with_bias) {
    n.bias = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(n.weight.numel())});
  }
  return n;
}

}  // namespace

QuantizedLayer quantize_w8a8_layer(const model::ModelConfig& config, std::int64_t layer,
                                   const model::LayerTensors& raw, ActivationSet& anti, ActivationSet& calib,
                                   const W8A8LayerOptions& options, PhaseTimes& times) {
  const std::string p = model::layer_prefix(layer);
  QuantizedLayer out;

  // Float pass: anti statistics, and the reference output on the calibration set.
  auto start = Clock::now();
  ChannelStatsCollector stats({p + "self_attn.q_proj", p + "self_attn.o_proj"}, options.include_padding);
  Tensor reference = calib.hidden.clone();
  {
    const model::DecoderLayer float_layer = model::build_float_layer(config, layer, raw, options.float_precision);
    if (options.smooth) run(config, float_layer, anti, &stats);
    times.add("anti statistics", start);
    start = Clock::now();
    model::run_layer_chunked(config, float_layer, reference, *calib.layout, kNoRowLimit, calib.batch_size, nullptr);
    times.add("float reference", start);
  }

  // Smoothing edits float32 copies of the attention weights and the input norm; the rest stay views.
  start = Clock::now();
  model::LayerTensors t = raw;
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    Tensor& w = t.at(p + "self_attn." + std::string(m) + ".weight");
    w = w.to_f32();
  }
  t.at(p + "input_layernorm.weight") = t.at(p + "input_layernorm.weight").to_f32();
  if (options.smooth) apply_m4(config, layer, t, stats, options.float_dtype);
  times.add("smoothing", start);

  // Weight quantization (data-free for every linear: only the static activation parameters need data).
  start = Clock::now();
  const std::vector<std::string> modules = model::layer_linear_modules(config, layer);
  std::map<std::string, std::size_t> index_of;
  for (const std::string& module : modules) {
    const Tensor& w = t.at(module + ".weight");
    const auto bias_it = t.find(module + ".bias");
    const Tensor bias = bias_it == t.end() ? Tensor() : bias_it->second;
    index_of[module] = out.linears.size();
    if (is_router(module)) {
      quant::QuantizedLinear router;
      router.name = module;
      router.scheme = quant::QuantScheme::kFloat;
      router.weight = w;
      out.linears.push_back(std::move(router));
    } else {
      const auto scheme = is_attention_linear(module) ? quant::QuantScheme::kW8A8 : quant::QuantScheme::kW8A8Dynamic;
      out.linears.push_back(quant::quantize_linear_weight(module, scheme, w, bias, options.float_dtype));
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
          return model::make_float_linear(weight, bias, model::FloatPrecision::kF32);
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
  run(config, quantized, calib, &observers);
  out.relative_error = relative_update_error(calib.hidden, reference, input, *calib.layout);
  for (const auto& [module, linear] : feeder.linears()) out.linears.at(index_of.at(module)) = linear->quantized();
  out.expert_tokens = tokens.counts();
  times.add("calibration", start);

  for (const std::string& norm : model::layer_norm_modules(layer)) {
    out.norms.push_back(norm_tensors(t, norm, options.smooth));
  }
  return out;
}

}  // namespace moeslim::pipeline
