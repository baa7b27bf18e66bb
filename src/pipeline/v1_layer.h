// One decoder layer through a modelslim_v1 recipe, msModelSlim's one-click W4A8 path (../shared/spec/
// msmodelslim-algorithms.md §6.3–6.6):
//   float pass     the float layer over the calibration prompts (one prompt per forward), observing what the
//                  smoothing needs (the rows of k_proj's and o_proj's inputs for the α/β search, channel maxima)
//                  and routing; its outputs are the next layer's inputs (v1 carries float activations, so no
//                  quantization error propagates into later layers' statistics)
//   smoothing      flex_smooth_quant: ov (group max) then norm-linear, α/β searched unless the recipe sets
//                  them; plus the recipe's MoE subgraphs (expert_smoothing.h)
//   weight quant   each linear by its recipe group: int8 or int4 codes, min-max or SSZ (v1 formulas, §6.4);
//                  every linear is dynamic, so nothing needs calibration data
//   check          the quantized layer (the runtime's integer arithmetic) on the same inputs, for the report's
//                  relative error against the float outputs
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/layer_types.h"

namespace moeslim::pipeline {

QuantizedLayer quantize_v1_layer(const model::ModelConfig& config, std::int64_t layer,
                                 const model::LayerTensors& raw, ActivationSet& calib, const LayerOptions& options,
                                 PhaseTimes& times);

}  // namespace moeslim::pipeline
