#include "quant/expert_smoothing.h"

#include "core/error.h"
#include "quant/flex_smoothing.h"

namespace moeslim::quant {
namespace {

using model::ModuleId;
using model::ModuleRole;

struct ExpertScales {
  std::vector<float> input_scale;                 // moe-input; empty = off
  std::vector<std::vector<float>> up_down_scale;  // up-down, per expert; empty = that expert unchanged
};

// An expert linear's weight with the plan applied: an F32 copy holding model-dtype values, or `weight` itself
// when nothing applies to it.
Tensor smoothed_expert_weight(const ModuleId& module, const Tensor& weight, const ExpertScales& plan,
                              DType float_dtype) {
  if (!module.is_expert()) return weight;
  const bool gate = module.role == ModuleRole::kGateProj, up = module.role == ModuleRole::kUpProj;
  const bool down = module.role == ModuleRole::kDownProj;
  const auto e = static_cast<std::size_t>(module.expert);
  const std::vector<float>* up_down =
      plan.up_down_scale.empty() || plan.up_down_scale[e].empty() ? nullptr : &plan.up_down_scale[e];
  const bool input = !plan.input_scale.empty() && (gate || up);
  if (!input && !(up_down != nullptr && (up || down))) return weight;
  Tensor w = weight.to_f32();
  if (input) scale_columns(w, plan.input_scale, float_dtype);
  if (up_down != nullptr && up) scale_rows_by_reciprocal(w, *up_down, float_dtype);
  if (up_down != nullptr && down) scale_columns(w, *up_down, float_dtype);
  return w;
}

}  // namespace

void request_expert_smoothing(const LayerContext& c, const ExpertSmoothingParams& params, ObservationRequest& request) {
  if (!c.config.is_moe_layer(c.layer)) return;
  if (params.moe_input) request.channel_stats.insert({c.layer, ModuleRole::kRouter});
  if (params.up_down) {
    for (std::int64_t e = 0; e < c.config.num_experts; ++e) {
      request.channel_stats.insert(ModuleId::expert_proj(c.layer, ModuleRole::kDownProj, e));
    }
  }
}

void apply_expert_smoothing(LayerContext& c, const ExpertSmoothingParams& params) {
  if (!c.config.is_moe_layer(c.layer) || !(params.moe_input || params.up_down)) return;
  const DType dt = c.settings.float_dtype;
  auto plan = std::make_shared<ExpertScales>();
  if (params.moe_input) {
    // moe_input_scales over every expert's gate/up, read one weight at a time: each weight's mapped pages go
    // back as soon as it is read, so the scan never holds the layer's experts (the max is order-free).
    const std::vector<float> act = c.observations->stats({c.layer, ModuleRole::kRouter}).abs_max();
    std::vector<float> weight_max(act.size(), 0.0f);
    for (std::int64_t e = 0; e < c.config.num_experts; ++e) {
      for (const ModuleRole role : {ModuleRole::kGateProj, ModuleRole::kUpProj}) {
        const ModuleId module = ModuleId::expert_proj(c.layer, role, e);
        accumulate_column_abs_max(c.read_weight(module), weight_max);
        if (c.release_mapped) c.release_mapped(model::hf_weight_name(module));
      }
    }
    plan->input_scale = flex_scales(act, weight_max, params.alpha, params.beta, dt);
    scale_norm(c.editable_weight({c.layer, ModuleRole::kPostAttentionNorm}), plan->input_scale, dt);
    scale_columns(c.editable_weight({c.layer, ModuleRole::kRouter}), plan->input_scale, dt);
    c.smoothing.push_back({"moe-input", params.alpha, params.beta});
  }
  if (params.up_down) {
    plan->up_down_scale.resize(static_cast<std::size_t>(c.config.num_experts));
    std::int64_t smoothed = 0;
    for (std::int64_t e = 0; e < c.config.num_experts; ++e) {
      const ModuleId down = ModuleId::expert_proj(c.layer, ModuleRole::kDownProj, e);
      const ChannelStatsObserver& h = c.observations->stats(down);
      if (h.rows_observed() < c.settings.min_expert_tokens) continue;  // starved (no token, or too few): s = 1
      plan->up_down_scale[static_cast<std::size_t>(e)] = up_down_scales(c.read_weight(down), h.abs_max(), params.alpha,
                                                                        params.beta, dt);
      if (c.release_mapped) c.release_mapped(model::hf_weight_name(down));
      ++smoothed;
    }
    SmoothingChoice choice{"up-down", params.alpha, params.beta};
    choice.experts_smoothed = smoothed;
    c.smoothing.push_back(choice);
  }
  c.deferred_edits.push_back([plan, dt](const ModuleId& module, const Tensor& weight) {
    return smoothed_expert_weight(module, weight, *plan, dt);
  });
}

}  // namespace moeslim::quant
