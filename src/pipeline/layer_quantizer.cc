#include "pipeline/layer_quantizer.h"

#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "model/causal_lm.h"
#include "model/grouped_layer_pass.h"
#include "model/quantized_linear.h"
#include "model/weight_only_linear.h"
#include "pipeline/layer_statistics.h"

namespace moeslim::pipeline {
namespace {

using model::ExpertRange;
using model::ModuleId;
using model::ModuleRole;

// The runtime linear of `q` when no step calibrates it: float32 for float linears, the integer dynamic linears
// for W8A8_DYNAMIC and W4A8_DYNAMIC (int4 codes are unpacked, one per int8), and for W4A16 a float32 linear on
// the weight dequantized in the model's float dtype.
std::unique_ptr<model::Linear> runtime_linear(const quant::QuantizedLinear& q, DType float_dtype) {
  switch (q.scheme) {
    case quant::QuantScheme::kFloat:
      return model::make_float_linear(q.weight, q.bias, model::FloatPrecision::kF32);
    case quant::QuantScheme::kW8A8Dynamic:
    case quant::QuantScheme::kW4A8Dynamic:
      return model::make_w8a8_dynamic_linear(q.weight, q.weight_scale, q.bias);
    case quant::QuantScheme::kW4A16:
      return model::make_w4a16_linear(q.weight, q.weight_scale, q.weight_zero_point, q.bias, float_dtype,
                                      model::FloatPrecision::kF32);
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

// The layer's parts into a QuantizedLayer, for callers without a sink.
class CollectingSink final : public LayerSink {
 public:
  explicit CollectingSink(QuantizedLayer& out) : out_(out) {}
  void linear(quant::QuantizedLinear l) override {
    const ModuleId module = l.module;
    out_.linears.insert_or_assign(module, std::move(l));
  }
  void norm(quant::NormTensors n) override {
    const ModuleId module = n.module;
    out_.norms.insert_or_assign(module, std::move(n));
  }

 private:
  QuantizedLayer& out_;
};

// Consecutive phases of a layer, each timed from where the one before ended, so that work done inside a
// pass's hooks (quantizing an expert group, writing it) is counted under its own phase, not the pass's.
class PhaseClock {
 public:
  explicit PhaseClock(PhaseTimes& times) : times_(times), start_(PhaseTimes::mark()) {}
  void end(const std::string& phase) {
    times_.add(phase, start_);
    start_ = PhaseTimes::mark();
  }

 private:
  PhaseTimes& times_;
  PhaseTimes::Mark start_;
};

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
                              const LayerQuantizerOptions& options, PhaseTimes& times, LayerSink* sink) {
  const bool propagate_quantized = options.propagation == quant::Propagation::kQuantized;
  QuantizedLayer out;
  CollectingSink collecting(out);
  LayerSink& parts = sink != nullptr ? *sink : collecting;
  quant::LayerContext c(config, layer, std::move(raw), options.settings);
  c.release_mapped = options.release_mapped;
  const auto release = [&](const std::vector<ModuleId>& modules) {
    if (!c.release_mapped) return;
    for (const ModuleId& m : modules) c.release_mapped(model::hf_weight_name(m));
  };
  const bool moe = config.is_moe_layer(layer);
  const std::vector<ExpertRange> groups =
      moe ? model::expert_groups(config.num_experts,
                                 options.settings.experts_in_one_group(config) ? config.num_experts
                                                                               : options.settings.experts_per_group)
          : std::vector<ExpertRange>();
  const auto run = [&](model::DecoderLayer& l, ActivationSet& set, model::ForwardObserver* observer,
                       const model::ExpertGroupHooks& hooks) {
    model::run_layer_grouped(config, l, set.hidden, *set.layout, set.batch_size, groups, observer, hooks,
                             options.scratch);
  };

  PhaseClock clock(times);
  for (const auto& step : steps) {
    step->before_float_pass(c);
    clock.end(step->phase());
  }

  // Float pass: what the steps observe, the routing, and the float outputs. Each expert group's float linears
  // exist while the group runs, and its mapped weights go back after it.
  quant::ObservationRequest request;
  for (const auto& step : steps) step->request(c, request);
  quant::LayerObservations observations;
  ObservationCollector collector(request, options.settings.include_padding,
                                 (anti != nullptr ? anti->layout : calib.layout)->real_rows());
  ExpertTokenCounter tokens(moe ? config.num_experts : 0), anti_tokens(moe ? config.num_experts : 0);
  eval::RoutingRecorder float_routes, quantized_routes;  // router agreement (MoE layers)
  // The float outputs go to `reference` (quantized propagation: calib keeps the input for the quantized pass)
  // or to calib itself, with the input kept aside for the quantized check (float propagation).
  ActivationSet reference{Tensor(), calib.layout, calib.batch_size};
  Tensor input;
  double update = 0;  // Σ‖float output − input‖², the relative error's denominator
  {
    const model::LinearFactory make_float = model::float_linear_factory(options.settings.float_precision);
    model::DecoderLayer float_layer = model::build_layer_without_experts(config, layer, c.tensors, make_float);
    model::ExpertGroupHooks hooks;
    hooks.load_experts = [&](ExpertRange g, const model::ExpertGroupInputs&) {
      for (std::int64_t e = g.first; e < g.last; ++e) {
        model::LayerTensors weights;  // in the layer's current basis (a rotation reaches experts as they are read)
        for (const ModuleId& m : model::expert_linears(layer, e, e + 1)) {
          weights.emplace(model::hf_weight_name(m), c.read_weight(m));
        }
        float_layer.mlp.experts[static_cast<std::size_t>(e)] = model::build_expert(layer, e, weights, make_float);
      }
    };
    // Smaller groups than the layer go back after each pass, so that only one group is ever mapped. One group
    // is the whole layer: its pages stay from the load's check through the float passes (mapping them again
    // per pass costs more than the GEMMs save; see quant_pipeline.cc). When a step holds observed input rows
    // (the α/β search, which copies them too), they go back after the last float pass, so that the search does
    // not hold them as well; otherwise they stay until the quantize step hands each back as it quantizes it.
    const bool a_step_holds_rows = !request.input_rows.empty();
    bool last_float_pass = false;
    hooks.unload_experts = [&](ExpertRange g) {
      for (std::int64_t e = g.first; e < g.last; ++e) float_layer.mlp.experts[static_cast<std::size_t>(e)] = {};
      if (groups.size() > 1 || (last_float_pass && a_step_holds_rows)) {
        release(model::expert_linears(layer, g.first, g.last));
      }
    };
    if (anti != nullptr && !request.empty()) {
      ObserverFanOut anti_observers({&collector, moe ? &anti_tokens : nullptr});
      run(float_layer, *anti, &anti_observers, hooks);
      out.anti_expert_tokens = anti_tokens.counts();
      clock.end("anti statistics");
    }
    last_float_pass = true;
    ObserverFanOut observers({anti == nullptr ? &collector : nullptr, propagate_quantized ? nullptr : &tokens,
                              moe ? &float_routes : nullptr});
    if (propagate_quantized) {
      reference.hidden = calib.hidden.clone();
      run(float_layer, reference, &observers, hooks);
      update = real_rows_squared_distance(reference.hidden, calib.hidden, *calib.layout);
      clock.end("float reference");
    } else {
      input = calib.hidden.clone();
      run(float_layer, calib, &observers, hooks);  // calib now holds the float outputs
      update = real_rows_squared_distance(calib.hidden, input, *calib.layout);
      clock.end("float pass");
    }
  }
  collector.take(observations);
  c.observations = &observations;

  make_attention_editable(c);
  for (const auto& step : steps) {
    step->apply(c);
    clock.end(step->phase());
  }

  // The quantized pass: every linear at its scheme's runtime arithmetic, or as a calibrating step supplies it.
  // Each part goes to the sink as soon as it is final: the attention after its half of the pass, the router
  // and each expert group after the group ran, the rest at the end.
  const std::string pass_phase = propagate_quantized ? "calibration" : "quantized check";
  std::vector<std::unique_ptr<quant::CalibrationPass>> passes;
  for (const auto& step : steps) {
    if (auto pass = step->calibration(c)) passes.push_back(std::move(pass));
  }
  // Their calibration is final (the passes are told before a linear they supplied goes).
  const auto finish_passes = [&](const std::vector<ModuleId>& modules) {
    for (const auto& pass : passes) pass->finish(c, modules);
  };
  const auto hand_over = [&](const std::vector<ModuleId>& modules) {
    clock.end(pass_phase);
    for (const ModuleId& m : modules) {
      auto it = c.linears.find(m);
      if (it == c.linears.end()) throw Error(ErrorCode::kInternal, "linear not quantized", "", model::hf_module_name(m));
      parts.linear(std::move(it->second));
      c.linears.erase(it);
    }
    clock.end("writing");
  };
  {
    const model::LinearFactory make_runtime = [&](const ModuleId& module, const Tensor&, const Tensor&) {
      const quant::QuantizedLinear& q = c.linears.at(module);
      for (const auto& pass : passes) {
        if (auto linear = pass->linear_for(module, q)) return linear;
      }
      return runtime_linear(q, c.settings.float_dtype);
    };
    model::DecoderLayer quantized = model::build_layer_without_experts(config, layer, c.tensors, make_runtime);
    bool router_handed_over = false;
    model::ExpertGroupHooks hooks;
    hooks.after_attention = [&] {
      const std::vector<ModuleId> attention = {{layer, ModuleRole::kQProj}, {layer, ModuleRole::kKProj},
                                               {layer, ModuleRole::kVProj}, {layer, ModuleRole::kOProj}};
      finish_passes(attention);
      hand_over(attention);
      parts.norm(norm_tensors(c, {layer, ModuleRole::kQNorm}));
      parts.norm(norm_tensors(c, {layer, ModuleRole::kKNorm}));
      clock.end("writing");
    };
    hooks.load_experts = [&](ExpertRange g, const model::ExpertGroupInputs& inputs) {
      if (!router_handed_over) {  // routing is done: the router's linear is no longer read
        finish_passes({{layer, ModuleRole::kRouter}});
        hand_over({{layer, ModuleRole::kRouter}});
        router_handed_over = true;
      }
      clock.end(pass_phase);
      c.expert_inputs = &inputs;
      for (const auto& step : steps) {
        step->apply_to_experts(c, g);
        clock.end(step->phase());
      }
      c.expert_inputs = nullptr;
      for (std::int64_t e = g.first; e < g.last; ++e) {
        quantized.mlp.experts[static_cast<std::size_t>(e)] = model::build_expert(layer, e, c.tensors, make_runtime);
      }
    };
    hooks.unload_experts = [&](ExpertRange g) {
      const std::vector<ModuleId> modules = model::expert_linears(layer, g.first, g.last);
      finish_passes(modules);  // before their linears go
      for (std::int64_t e = g.first; e < g.last; ++e) quantized.mlp.experts[static_cast<std::size_t>(e)] = {};
      std::vector<ModuleId> left_float;  // the quantize step released the others as it quantized them
      for (const ModuleId& m : modules) {
        if (c.linears.at(m).scheme == quant::QuantScheme::kFloat) left_float.push_back(m);
      }
      hand_over(modules);
      release(left_float);  // written now
    };
    std::vector<model::ForwardObserver*> watchers;
    for (const auto& pass : passes) watchers.push_back(pass.get());
    if (propagate_quantized) watchers.push_back(&tokens);
    if (moe) watchers.push_back(&quantized_routes);
    ObserverFanOut observers(watchers);
    double error = 0;  // Σ‖quantized output − float output‖²
    if (propagate_quantized) {
      run(quantized, calib, &observers, hooks);  // calib now holds the quantized outputs
      error = real_rows_squared_distance(calib.hidden, reference.hidden, *calib.layout);
    } else {
      ActivationSet check{std::move(input), calib.layout, calib.batch_size};  // the input, run in place
      run(quantized, check, &observers, hooks);
      error = real_rows_squared_distance(check.hidden, calib.hidden, *calib.layout);
    }
    out.relative_error = update > 0 ? std::sqrt(error / update) : 0.0;
    if (moe) out.router_agreement = eval::router_agreement(float_routes, quantized_routes, layer);
    // What is left (a dense layer's MLP), while the layer (which owns the passes' linears) exists.
    std::vector<ModuleId> rest;
    for (const ModuleId& m : model::layer_linears(config, layer)) {
      if (c.linears.count(m) > 0) rest.push_back(m);
    }
    finish_passes(rest);
    hand_over(rest);
  }
  parts.norm(norm_tensors(c, {layer, ModuleRole::kInputNorm}));
  parts.norm(norm_tensors(c, {layer, ModuleRole::kPostAttentionNorm}));
  clock.end("writing");

  out.expert_tokens = tokens.counts();
  out.smoothing = std::move(c.smoothing);
  out.weight_fallbacks = std::move(c.weight_fallbacks);
  return out;
}

}  // namespace moeslim::pipeline
