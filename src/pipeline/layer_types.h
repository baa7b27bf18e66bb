// What the layer quantizer (layer_quantizer.h) shares with the streaming driver (quant_pipeline.h): phase
// timings, the activations carried between layers, and the quantized layer it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/profiler.h"
#include "core/tensor.h"
#include "eval/router_agreement.h"
#include "model/module_id.h"
#include "model/token_layout.h"
#include "quant/quant_types.h"
#include "quant/step.h"

namespace moeslim::pipeline {

// Wall time per phase, summed over layers, and with profiling on (core/profiler.h) the GEMM work each did and
// when each ran.
struct PhaseTimes {
  using Clock = std::chrono::steady_clock;
  // Where a phase starts: the time and the GEMM work done so far.
  struct Mark {
    Clock::time_point time;
    FlopTotals work;
  };
  static Mark mark() { return {Clock::now(), Profiler::flop_totals()}; }

  std::map<std::string, double> seconds;
  std::map<std::string, FlopTotals> gemm_work;  // phases that ran profiled GEMMs
  std::vector<PhaseSpan> spans;                 // with profiling on: when each phase ran

  void add(const std::string& phase, const Mark& start) {
    const Clock::time_point end = Clock::now();
    seconds[phase] += std::chrono::duration<double>(end - start.time).count();
    if (Profiler::enabled()) spans.push_back({phase, start.time, end});
    const FlopTotals now = Profiler::flop_totals();
    if (now.float_flops > start.work.float_flops || now.integer_ops > start.work.integer_ops) {
      FlopTotals& w = gemm_work[phase];
      w.float_flops += now.float_flops - start.work.float_flops;
      w.integer_ops += now.integer_ops - start.work.integer_ops;
    }
  }
};

// Activations of one prompt set between layers: [rows, hidden] float32 and how its rows form sequences.
struct ActivationSet {
  Tensor hidden;
  const model::TokenLayout* layout = nullptr;
  std::int64_t batch_size = 1;  // sequences per forward batch (one observer batch each)
};

// Receives a layer's finished parts as soon as each is final, in the order a writer takes them (Hugging Face
// module order): q, k, v, o_proj, q_norm, k_norm, then the router and the experts in ascending order (or the
// dense MLP's gate, up, down_proj), then input_layernorm and post_attention_layernorm. A MoE layer's experts
// arrive a group at a time, while the layer is still running, so they are never all held at once.
class LayerSink {
 public:
  virtual ~LayerSink() = default;
  virtual void linear(quant::QuantizedLinear linear) = 0;
  virtual void norm(quant::NormTensors norm) = 0;
};

struct QuantizedLayer {
  // Every linear and norm of the layer, when no LayerSink took them.
  std::map<model::ModuleId, quant::QuantizedLinear> linears;
  std::map<model::ModuleId, quant::NormTensors> norms;
  double relative_error = 0;               // ‖quantized − float‖ / ‖float − input‖ on the calibration set
  std::vector<std::int64_t> expert_tokens;  // calibration tokens routed to each expert (MoE layers)
  std::vector<std::int64_t> anti_expert_tokens;  // the same on the anti-outlier set, when a pass ran over it
  // MoE layers: how often the quantized layer's router picks the float layer's experts for a calibration token
  // (both passes fed the same input, so this is the layer's own effect).
  std::optional<eval::RouterAgreement> router_agreement;
  std::vector<quant::SmoothingChoice> smoothing;  // what the smoothing steps chose
  std::vector<quant::WeightFallback> weight_fallbacks;  // linears a data-fitted method left to its fallback
};

}  // namespace moeslim::pipeline
