// One decoder layer through the W8A8 mixed recipe (../shared/spec/msmodelslim-algorithms.md §3–4):
//   anti statistics   the float layer on the anti set's activations, observing q_proj's and o_proj's inputs
//                     (the same float layer also gives the reference output on the calibration activations)
//   smoothing         m4: v_proj -> o_proj (GQA mean), input_layernorm -> q/k/v with shift; NormBias on every norm
//   weight quant      q/k/v/o W8A8 codes, experts (and a dense MLP) W8A8_DYNAMIC; the router stays float
//   calibration       the quantized layer on the calibration activations, batch by batch: each static linear's
//                     running-mean observer takes the batch first, then the batch runs with those parameters
// Both activation sets are advanced in place to the layer's outputs: the anti set through the float layer
// (msModelSlim takes all anti statistics on the float model), the calibration set through the quantized one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "quant/quant_types.h"

namespace moeslim::pipeline {

// Wall time per phase, summed over layers.
struct PhaseTimes {
  using Clock = std::chrono::steady_clock;
  std::map<std::string, double> seconds;
  void add(const std::string& phase, Clock::time_point start) {
    seconds[phase] += std::chrono::duration<double>(Clock::now() - start).count();
  }
};

// Activations of one prompt set between layers: [rows, hidden] float32 and how its rows form sequences.
struct ActivationSet {
  Tensor hidden;
  const model::TokenLayout* layout = nullptr;
  std::int64_t batch_size = 1;  // sequences per forward batch (one observer batch each)
};

struct W8A8LayerOptions {
  bool smooth = true;            // m4; false = --anti_method none (norms then get no bias)
  bool include_padding = false;  // pads enter the statistics (msModelSlim's behaviour)
  DType float_dtype = DType::kBF16;
  model::FloatPrecision float_precision = model::FloatPrecision::kF32;  // of the float passes
};

struct QuantizedLayer {
  std::vector<quant::QuantizedLinear> linears;  // in layer_linear_modules() order
  std::vector<quant::NormTensors> norms;        // in layer_norm_modules() order
  double relative_error = 0;                    // ‖quantized − float‖ / ‖float − input‖ on the calibration set
  std::vector<std::int64_t> expert_tokens;      // calibration tokens routed to each expert (MoE layers)
};

// `raw`: the layer's checkpoint tensors (views are fine; only attention weights and norms are copied).
// `anti` is empty when options.smooth is false.
QuantizedLayer quantize_w8a8_layer(const model::ModelConfig& config, std::int64_t layer,
                                   const model::LayerTensors& raw, ActivationSet& anti, ActivationSet& calib,
                                   const W8A8LayerOptions& options, PhaseTimes& times);

}  // namespace moeslim::pipeline
