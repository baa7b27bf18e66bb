// What the layer quantizer (layer_quantizer.h) shares with the streaming driver (quant_pipeline.h): phase
// timings, the activations carried between layers, and the quantized layer it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/module_id.h"
#include "model/token_layout.h"
#include "quant/quant_types.h"
#include "quant/step.h"

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

struct QuantizedLayer {
  std::map<model::ModuleId, quant::QuantizedLinear> linears;  // every linear of the layer
  std::map<model::ModuleId, quant::NormTensors> norms;        // every norm of the layer
  double relative_error = 0;               // ‖quantized − float‖ / ‖float − input‖ on the calibration set
  std::vector<std::int64_t> expert_tokens;  // calibration tokens routed to each expert (MoE layers)
  std::vector<quant::SmoothingChoice> smoothing;  // what the smoothing steps chose
};

}  // namespace moeslim::pipeline
