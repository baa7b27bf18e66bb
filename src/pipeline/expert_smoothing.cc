#include "pipeline/expert_smoothing.h"

#include "core/error.h"
#include "pipeline/layer_common.h"
#include "quant/flex_smoothing.h"

namespace moeslim::pipeline {
namespace {

std::string expert_prefix(std::int64_t layer, std::int64_t e) {
  return model::layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
}

}  // namespace

std::vector<std::string> expert_smoothing_inputs(const model::ModelConfig& config, std::int64_t layer,
                                                 const recipe::SmoothStep* step) {
  std::vector<std::string> modules;
  if (step == nullptr || !config.is_moe_layer(layer)) return modules;
  const std::string p = model::layer_prefix(layer);
  if (step->has(recipe::Subgraph::kMoeInput)) modules.push_back(p + "mlp.gate");
  if (step->has(recipe::Subgraph::kUpDown)) {
    for (std::int64_t e = 0; e < config.num_experts; ++e) modules.push_back(expert_prefix(layer, e) + "down_proj");
  }
  return modules;
}

ExpertSmoothing plan_expert_smoothing(const model::ModelConfig& config, std::int64_t layer,
                                      model::LayerTensors& t, const ChannelStatsCollector& stats,
                                      const recipe::SmoothStep& step, DType float_dtype,
                                      nlohmann::ordered_json& report) {
  ExpertSmoothing plan;
  if (!config.is_moe_layer(layer)) return plan;
  const double alpha = step.alpha.value_or(0.5);
  const double beta = step.beta.value_or(1.0 - alpha);
  const std::string p = model::layer_prefix(layer);

  if (step.has(recipe::Subgraph::kMoeInput)) {
    std::vector<const Tensor*> gate_up;
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      gate_up.push_back(&t.at(expert_prefix(layer, e) + "gate_proj.weight"));
      gate_up.push_back(&t.at(expert_prefix(layer, e) + "up_proj.weight"));
    }
    plan.input_scale =
        quant::moe_input_scales(gate_up, stats.stats(p + "mlp.gate").abs_max(), alpha, beta, float_dtype);
    Tensor norm = t.at(p + "post_attention_layernorm.weight").to_f32();
    quant::scale_norm(norm, plan.input_scale, float_dtype);
    t[p + "post_attention_layernorm.weight"] = norm;
    Tensor router = t.at(p + "mlp.gate.weight").to_f32();
    quant::scale_columns(router, plan.input_scale, float_dtype);
    t[p + "mlp.gate.weight"] = router;
    report["moe-input"] = {{"alpha", alpha}, {"beta", beta}};
  }
  if (step.has(recipe::Subgraph::kUpDown)) {
    plan.up_down_scale.resize(static_cast<std::size_t>(config.num_experts));
    std::int64_t smoothed = 0;
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      const quant::ChannelStatsObserver& h = stats.stats(expert_prefix(layer, e) + "down_proj");
      if (h.rows_observed() == 0) continue;  // no token: s = 1
      plan.up_down_scale[static_cast<std::size_t>(e)] =
          quant::up_down_scales(t.at(expert_prefix(layer, e) + "down_proj.weight"), h.abs_max(), alpha, beta,
                                float_dtype);
      ++smoothed;
    }
    report["up-down"] = {{"alpha", alpha}, {"beta", beta}, {"experts_smoothed", smoothed}};
  }
  return plan;
}

Tensor smoothed_expert_weight(const std::string& module, const Tensor& weight, const ExpertSmoothing& plan,
                              DType float_dtype) {
  const std::int64_t e = expert_index(module);
  if (e < 0) return weight;
  const bool gate = module.ends_with(".gate_proj"), up = module.ends_with(".up_proj");
  const bool down = module.ends_with(".down_proj");
  const std::vector<float>* up_down =
      plan.up_down_scale.empty() || plan.up_down_scale[static_cast<std::size_t>(e)].empty()
          ? nullptr
          : &plan.up_down_scale[static_cast<std::size_t>(e)];
  const bool input = !plan.input_scale.empty() && (gate || up);
  if (!input && !(up_down != nullptr && (up || down))) return weight;
  Tensor w = weight.to_f32();
  if (input) quant::scale_columns(w, plan.input_scale, float_dtype);
  if (up_down != nullptr && up) quant::scale_rows_by_reciprocal(w, *up_down, float_dtype);
  if (up_down != nullptr && down) quant::scale_columns(w, *up_down, float_dtype);
  return w;
}

}  // namespace moeslim::pipeline
