// What the per-layer quantizers (v0_layer.h, v1_layer.h) share with the streaming driver (quant_pipeline.h):
// phase timings, the activations carried between layers, the options, and the quantized layer they return.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "model/causal_lm.h"
#include "quant/quant_types.h"
#include "recipe/recipe.h"

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

struct LayerOptions {
  const recipe::Recipe* recipe = nullptr;
  bool include_padding = false;  // pads enter the statistics (msModelSlim's v0 behaviour)
  DType float_dtype = DType::kBF16;
  model::FloatPrecision float_precision = model::FloatPrecision::kF32;  // of the float passes
  std::int64_t search_rows = 0;  // flex_smooth α/β search: at most this many activation rows (0 = all)
};

struct QuantizedLayer {
  std::vector<quant::QuantizedLinear> linears;  // in layer_linear_modules() order
  std::vector<quant::NormTensors> norms;        // in layer_norm_modules() order
  double relative_error = 0;                    // ‖quantized − float‖ / ‖float − input‖ on the calibration set
  std::vector<std::int64_t> expert_tokens;      // calibration tokens routed to each expert (MoE layers)
  nlohmann::ordered_json smoothing = nlohmann::ordered_json::object();  // per subgraph: what was chosen
};

}  // namespace moeslim::pipeline
