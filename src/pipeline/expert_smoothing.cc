#include "pipeline/expert_smoothing.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "pipeline/layer_common.h"
#include "quant/flex_smoothing.h"

namespace moeslim::pipeline {
namespace {

std::string expert_prefix(std::int64_t layer, std::int64_t e) {
  return model::layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
}

// max_i |W[i, j]| per column j, streaming the (possibly mapped) weight row by row.
void column_abs_max(const Tensor& w, std::vector<float>& out) {
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  out.resize(static_cast<std::size_t>(cols), 0.0f);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    w.read_f32(static_cast<std::size_t>(r * cols), static_cast<std::size_t>(cols), row.data());
    for (std::int64_t c = 0; c < cols; ++c) out[c] = std::max(out[c], std::fabs(row[c]));
  }
}

void scale_columns(Tensor& w, const std::vector<float>& s, DType dtype) {
  float* d = w.mutable_data<float>();
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) d[r * cols + c] = round_to_float_dtype(d[r * cols + c] * s[c], dtype);
  }
}

void scale_rows_by_reciprocal(Tensor& w, const std::vector<float>& s, DType dtype) {
  float* d = w.mutable_data<float>();
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float inv = round_to_float_dtype(1.0f / s[r], dtype);
    for (std::int64_t c = 0; c < cols; ++c) d[r * cols + c] = round_to_float_dtype(d[r * cols + c] * inv, dtype);
  }
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
    std::vector<float> w;
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      column_abs_max(t.at(expert_prefix(layer, e) + "gate_proj.weight"), w);
      column_abs_max(t.at(expert_prefix(layer, e) + "up_proj.weight"), w);
    }
    plan.input_scale = quant::flex_scales(stats.stats(p + "mlp.gate").abs_max(), w, alpha, beta, float_dtype);
    Tensor norm = t.at(p + "post_attention_layernorm.weight").to_f32().reshaped({config.hidden_size, 1});
    scale_rows_by_reciprocal(norm, plan.input_scale, float_dtype);  // a [hidden, 1] column: γ_j · (1/s_j)
    t[p + "post_attention_layernorm.weight"] = norm.reshaped({config.hidden_size});
    Tensor router = t.at(p + "mlp.gate.weight").to_f32();
    scale_columns(router, plan.input_scale, float_dtype);
    t[p + "mlp.gate.weight"] = router;
    report["moe-input"] = {{"alpha", alpha}, {"beta", beta}};
  }
  if (step.has(recipe::Subgraph::kUpDown)) {
    plan.up_down_scale.resize(static_cast<std::size_t>(config.num_experts));
    std::int64_t smoothed = 0;
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      const quant::ChannelStatsObserver& h = stats.stats(expert_prefix(layer, e) + "down_proj");
      if (h.rows_observed() == 0) continue;  // no token: s = 1
      std::vector<float> w;
      column_abs_max(t.at(expert_prefix(layer, e) + "down_proj.weight"), w);
      plan.up_down_scale[static_cast<std::size_t>(e)] = quant::flex_scales(h.abs_max(), w, alpha, beta, float_dtype);
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
  if (input) scale_columns(w, plan.input_scale, float_dtype);
  if (up_down != nullptr && up) scale_rows_by_reciprocal(w, *up_down, float_dtype);
  if (up_down != nullptr && down) scale_columns(w, *up_down, float_dtype);
  return w;
}

}  // namespace moeslim::pipeline
