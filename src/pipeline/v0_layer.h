// One decoder layer through a modelslim_v0 recipe, msModelSlim's W8A8 script (../shared/spec/
// msmodelslim-algorithms.md §3–4):
//   anti statistics   the float layer on the anti set's activations, observing the inputs the smoothing needs
//                     (the same float layer also gives the reference output on the calibration activations)
//   smoothing         m4: v_proj -> o_proj (GQA mean), input_layernorm -> q/k/v with shift; NormBias on every
//                     norm; plus the recipe's MoE subgraphs (expert_smoothing.h)
//   weight quant      each linear by the recipe group that claims it (v0 formulas, §4.3); the router stays float
//   calibration       the quantized layer on the calibration activations, batch by batch: each static linear's
//                     running-mean observer takes the batch first, then the batch runs with those parameters
// Both activation sets are advanced in place to the layer's outputs: the anti set through the float layer
// (msModelSlim takes all anti statistics on the float model), the calibration set through the quantized one.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/layer_types.h"

namespace moeslim::pipeline {

// `raw`: the layer's checkpoint tensors (views are fine; only what smoothing edits is copied). `anti` is empty
// when the recipe has no smoothing step.
QuantizedLayer quantize_v0_layer(const model::ModelConfig& config, std::int64_t layer,
                                 const model::LayerTensors& raw, ActivationSet& anti, ActivationSet& calib,
                                 const LayerOptions& options, PhaseTimes& times);

}  // namespace moeslim::pipeline
