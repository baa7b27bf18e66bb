// The MoE smoothing subgraphs of moeslim's recipes (beyond msModelSlim; issue 7 item 4), planned from one
// layer's float-pass statistics and applied expert by expert as the experts are quantized, so no more than one
// expert's float32 copy exists at a time (a Qwen3-235B layer's experts are ~10 GB in float32):
//   moe-input  post_attention_layernorm → router + every expert's gate/up: one scale s over the hidden size from
//              the pooled activation maxima and the max over all experts' columns; γ ← γ·(1/s), every expert's
//              gate/up columns ·s and the router's columns ·s, so routing is unchanged in exact arithmetic.
//   up-down    per expert: up_proj rows ·(1/s), down_proj columns ·s (h = silu(gate·x) ⊙ up·x is linear in
//              up's rows); an expert that saw no token keeps s = 1.
// The arithmetic is quant/flex_smoothing.h's (moe_input_scales, up_down_scales, scale_columns, ...; the same
// functions its smooth_moe_input / smooth_up_down apply eagerly), with the step's α (default 0.5) and β
// (default 1 − α); this file only decides what to apply to which expert, and when.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/layer_statistics.h"
#include "recipe/recipe.h"

namespace moeslim::pipeline {

struct ExpertSmoothing {
  std::vector<float> input_scale;                 // moe-input; empty = off
  std::vector<std::vector<float>> up_down_scale;  // up-down, per expert; empty = that expert unchanged
};

// The modules whose input statistics plan_expert_smoothing needs (router, every expert's down_proj), for a
// ChannelStatsCollector on the float pass; empty when the step uses neither subgraph or the layer is dense.
std::vector<std::string> expert_smoothing_inputs(const model::ModelConfig& config, std::int64_t layer,
                                                 const recipe::SmoothStep* step);

// Computes the scales and applies the small eager parts to `tensors`: post_attention_layernorm.weight and the
// router weight become F32 tensors holding model-dtype values. `report` gets what was done.
ExpertSmoothing plan_expert_smoothing(const model::ModelConfig& config, std::int64_t layer,
                                      model::LayerTensors& tensors, const ChannelStatsCollector& stats,
                                      const recipe::SmoothStep& step, DType float_dtype,
                                      nlohmann::ordered_json& report);

// An expert linear's weight ("…mlp.experts.E.{gate,up,down}_proj") with the plan applied: an F32 copy holding
// model-dtype values, or `weight` itself when nothing applies to it.
Tensor smoothed_expert_weight(const std::string& module, const Tensor& weight, const ExpertSmoothing& plan,
                              DType float_dtype);

}  // namespace moeslim::pipeline
