// One decoder layer through a recipe's steps (quant/step.h has the whole sequence):
//   before the float pass   the steps' changes of basis (rotation)
//   float pass              the float layer, observing what the steps request: on the anti set when the recipe
//                           takes its statistics there (it moves on through the float layer), else on the
//                           calibration set; the float outputs on the calibration set are the reference
//   steps                   in recipe order (smoothing, weight quantization)
//   quantized pass          the quantized layer with the runtime's integer arithmetic on the same inputs, with
//                           the steps' calibration hooks attached; gives the report's relative error. A MoE
//                           layer's experts are quantized, run and handed to the LayerSink a group at a time
//                           (both passes go group by group: model/grouped_layer_pass.h)
//   propagation             the calibration set moves on to the quantized outputs (Propagation::kQuantized) or
//                           the float ones (kFloat)
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "model/config.h"
#include "model/forward_scratch.h"
#include "model/layer_loader.h"
#include "model/linear.h"
#include "pipeline/layer_types.h"
#include "quant/step.h"

namespace moeslim::pipeline {

struct LayerQuantizerOptions {
  quant::RunSettings settings;
  quant::Propagation propagation = quant::Propagation::kQuantized;
  // Hands a checkpoint tensor's mapped pages back (quant::LayerContext::release_mapped); may be empty.
  std::function<void(const std::string& name)> release_mapped;
  // Activation buffers every pass of the layer uses and keeps (model/grouped_layer_pass.h): a run hands the
  // same one to every layer, so that they are faulted in once. Null: each pass takes buffers of its own.
  model::ForwardScratch* scratch = nullptr;
};

// `raw`: the layer's checkpoint tensors (views are fine; what a step edits is copied). `anti`: the set the
// statistics are taken on, or nullptr to take them on the calibration set's float pass. Both sets are advanced
// in place to the layer's outputs. `times` gets each phase's wall time. The layer's linears and norms go to
// `sink` as they are finished, or, without one, into the returned QuantizedLayer.
QuantizedLayer quantize_layer(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors raw,
                              const quant::StepList& steps, ActivationSet* anti, ActivationSet& calib,
                              const LayerQuantizerOptions& options, PhaseTimes& times, LayerSink* sink = nullptr);

// The layer over every batch of `set`, in place: DecoderLayer::forward batch by batch (the quantizer's grouped
// passes give the same bits).
void run_layer(const model::ModelConfig& config, const model::DecoderLayer& layer, ActivationSet& set,
               model::ForwardObserver* observer);

// Σ ‖a_row − b_row‖² over the real rows, in double, row by row. The layer's relative error is
// sqrt(Σ‖quantized − reference‖² / Σ‖reference − input‖²): the quantization error relative to the layer's float
// update of the residual stream. The two sums are taken apart so that no layer input is kept for them.
double real_rows_squared_distance(const Tensor& a, const Tensor& b, const model::TokenLayout& layout);

}  // namespace moeslim::pipeline
