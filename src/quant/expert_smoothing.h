// The MoE smoothing subgraphs (beyond msModelSlim), which the m4 and flex_smooth steps both offer: planned from
// one layer's float-pass statistics and applied expert by expert as the experts are quantized, so no more than
// one expert's float32 copy exists at a time (a Qwen3-235B layer's experts are ~10 GB in float32):
//   moe-input  post_attention_layernorm → router + every expert's gate/up: one scale s over the hidden size from
//              the pooled activation maxima and the max over all experts' columns; γ ← γ·(1/s), every expert's
//              gate/up columns ·s and the router's columns ·s, so routing is unchanged in exact arithmetic.
//   up-down    per expert: up_proj rows ·(1/s), down_proj columns ·s (h = silu(gate·x) ⊙ up·x is linear in
//              up's rows); an expert that saw no token keeps s = 1.
// The arithmetic is flex_smoothing.h's (moe_input_scales, up_down_scales, scale_columns, ...); this file only
// decides what to apply to which expert, and when.
#pragma once

#include "quant/step.h"

namespace moeslim::quant {

struct ExpertSmoothingParams {
  bool moe_input = false;
  bool up_down = false;
  double alpha = 0.5;  // the step's α, default 0.5
  double beta = 0.5;   // the step's β, default 1 − α
};

// The channel statistics it needs: the router's input (moe-input) and every expert's down_proj input (up-down).
void request_expert_smoothing(const LayerContext& context, const ExpertSmoothingParams& params,
                              ObservationRequest& request);

// Computes the scales, applies the small eager parts (post_attention_layernorm and the router become F32 tensors
// holding model-dtype values), adds a deferred edit for the expert weights, and records the choices.
void apply_expert_smoothing(LayerContext& context, const ExpertSmoothingParams& params);

}  // namespace moeslim::quant
