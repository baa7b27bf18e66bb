#include "pipeline/layer_quantizer.h"

#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "model/causal_lm.h"
#include "model/quantized_linear.h"
#include "pipeline/layer_statistics.h"

namespace moeslim::pipeline {
namespace {

using model::ModuleId;
using model::ModuleRole;

// The runtime linear of `q` when no step calibrates it: float32 for float linears, the integer dynamic linears
// for W8A8_DYNAMIC and W4A8_DYNAMIC (int4 codes are unpacked, one per int8).
std::unique_ptr<model::Linear> runtime_linear(const quant::QuantizedLinear& q) {
  switch (q.scheme) {
    case quant::QuantScheme::kFloat:
      return model::make_float_linear(q.weight, q.bias, model::FloatPrecision::kF32);
    case quant::QuantScheme::kW8A8Dynamic:
    case quant::QuantScheme::kW4A8Dynamic:
      return model::make_w8a8_dynamic_linear(q.weight, q.weight_scale, q.bias);
    case quant::QuantScheme::kW8A8:
      break;
  }
  throw Error(ErrorCode::kInternal, "a static W8A8 linear needs its calibration pass (the static_calibration step)",
              "", model::hf_module_name(q.module));
}

// Smoothing edits float32 copies of the attention weights and the input norm (exact widenings; the experts
// are edited one at a time as they are quantized, see quant/expert_smoothing.h).
void make_attention_editable(quant::LayerContext& c) {
  for (const ModuleRole r : {ModuleRole::kQProj, ModuleRole::kKProj, ModuleRole::kVProj, ModuleRole::kOProj,
                             ModuleRole::kInputNorm}) {
    c.editable_weight({c.layer, r});
  }
}

quant::NormTensors norm_tensors(const quant::LayerContext& c, const ModuleId& norm) {
  quant::NormTensors n{norm, model::to_f32_vector(c.weight(norm)), Tensor()};
  const Tensor bias = c.bias(norm);
  if (!bias.empty()) {
    n.bias = bias;
  } else if (c.norm_bias) {
    n.bias = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(n.weight.numel())});
  }
  return n;
}

}  // namespace

void run_layer(const model::ModelConfig& config, const model::DecoderLayer& layer, ActivationSet& set,
               model::ForwardObserver* observer) {
  model::run_layer_chunked(config, layer, set.hidden, *set.layout, std::numeric_limits<std::int64_t>::max(),
                           set.batch_size, observer);
}

double real_rows_squared_distance(const Tensor& a, const Tensor& b, const model::TokenLayout& layout) {
  const std::int64_t cols = a.dim(1);
  double sum = 0;
  const float* p = a.data<float>();
  const float* q = b.data<float>();
  for (std::int64_t row = 0; row < a.dim(0); ++row) {
    if (layout.real[static_cast<std::size_t>(row)] == 0) continue;
    for (std::int64_t c = row * cols; c < (row + 1) * cols; ++c) {
      sum += (static_cast<double>(p[c]) - q[c]) * (static_cast<double>(p[c]) - q[c]);
    }
  }
  return sum;
}

QuantizedLayer quantize_layer(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors raw,
                              const quant::StepList& steps, ActivationSet* anti, ActivationSet& calib,
                              const LayerQuantizerOptions& options, PhaseTimes& times) {
  const bool propagate_quantized = options.propagation == quant::Propagation::kQuantized;
  quant::LayerContext c(config, layer, std::move(raw), options.settings);
  c.release_mapped = options.release_mapped;
  for (const auto& step : steps) {
    const auto start = PhaseTimes::mark();
    step->before_float_pass(c);
    times.add(step->phase(), start);
  }

  // Float pass: what the steps observe, the routing, and the float outputs.
  quant::ObservationRequest request;
  for (const auto& step : steps) step->request(c, request);
  quant::LayerObservations observations;
  ObservationCollector collector(request, options.settings.include_padding,
                                 (anti != nullptr ? anti->layout : calib.layout)->real_rows());
  ExpertTokenCounter tokens(config.is_moe_layer(layer) ? config.num_experts : 0);
  // The float outputs go to `reference` (quantized propagation: calib keeps the input for the quantized pass)
  // or to calib itself, with the input kept aside for the quantized check (float propagation).
  ActivationSet reference{Tensor(), calib.layout, calib.batch_size};
  Tensor input;
  double update = 0;  // Σ‖float output − input‖², the relative error's denominator
  {
    const model::DecoderLayer float_layer =
        model::build_float_layer(config, layer, c.tensors, options.float_precision);
    auto start = PhaseTimes::mark();
    if (anti != nullptr && !request.empty()) {
      run_layer(config, float_layer, *anti, &collector);
      times.add("anti statistics", start);
      start = PhaseTimes::mark();
    }
    ObserverFanOut observers({anti == nullptr ? &collector : nullptr, propagate_quantized ? nullptr : &tokens});
    if (propagate_quantized) {
      reference.hidden = calib.hidden.clone();
      run_layer(config, float_layer, reference, &observers);
      update = real_rows_squared_distance(reference.hidden, calib.hidden, *calib.layout);
      times.add("float reference", start);
    } else {
      input = calib.hidden.clone();
      run_layer(config, float_layer, calib, &observers);  // calib now holds the float outputs
      update = real_rows_squared_distance(calib.hidden, input, *calib.layout);
      times.add("float pass", start);
    }
  }
  collector.take(observations);
  c.observations = &observations;

  make_attention_editable(c);
  for (const auto& step : steps) {
    const auto start = PhaseTimes::mark();
    step->apply(c);
    times.add(step->phase(), start);
  }

  // The quantized pass: every linear at its scheme's runtime arithmetic, or as a calibrating step supplies it.
  auto start = PhaseTimes::mark();
  std::vector<std::unique_ptr<quant::CalibrationPass>> passes;
  for (const auto& step : steps) {
    if (auto pass = step->calibration(c)) passes.push_back(std::move(pass));
  }
  QuantizedLayer out;
  {
    const model::DecoderLayer quantized = model::build_layer(
        config, layer, c.tensors, [&](const ModuleId& module, const Tensor&, const Tensor&) {
          const quant::QuantizedLinear& q = c.linears.at(module);
          for (const auto& pass : passes) {
            if (auto linear = pass->linear_for(module, q)) return linear;
          }
          return runtime_linear(q);
        });
    std::vector<model::ForwardObserver*> watchers;
    for (const auto& pass : passes) watchers.push_back(pass.get());
    if (propagate_quantized) watchers.push_back(&tokens);
    ObserverFanOut observers(watchers);
    double error = 0;  // Σ‖quantized output − float output‖²
    if (propagate_quantized) {
      run_layer(config, quantized, calib, &observers);  // calib now holds the quantized outputs
      error = real_rows_squared_distance(calib.hidden, reference.hidden, *calib.layout);
    } else {
      ActivationSet check{std::move(input), calib.layout, calib.batch_size};  // the input, run in place
      run_layer(config, quantized, check, &observers);
      error = real_rows_squared_distance(check.hidden, calib.hidden, *calib.layout);
    }
    out.relative_error = update > 0 ? std::sqrt(error / update) : 0.0;
    for (const auto& pass : passes) pass->finish(c);  // while the layer (which owns their linears) exists
  }
  times.add(propagate_quantized ? "calibration" : "quantized check", start);

  out.linears = std::move(c.linears);
  for (const ModuleId& norm : model::layer_norms(layer)) out.norms.emplace(norm, norm_tensors(c, norm));
  out.expert_tokens = tokens.counts();
  out.smoothing = std::move(c.smoothing);
  return out;
}

}  // namespace moeslim::pipeline
