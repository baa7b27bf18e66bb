// Where quantization code watches the forward pass. The engine calls these with pointers into its own buffers
// (nothing is copied for an observer), and skips the calls entirely when no observer is attached.
#pragma once

#include <cstdint>
#include "model/module_id.h"

namespace moeslim::model {

class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;

  // Should on_linear_input be called for this module? Lets an observer skip, say, everything but experts.
  virtual bool wants_linear_input(const ModuleId& module) const { return true; }

  // May on_linear_input run for two different modules of one layer at once, from different threads? The
  // MoE block then runs its experts in parallel; otherwise one after another, in ascending index. Never
  // twice at once for one module; on_routing always from the thread that called forward.
  virtual bool accepts_concurrent_modules() const { return false; }

  // The input of a linear layer (the router included): `rows` x `cols` float32,
  // row-major; real[r] is 1 for a real token and 0 for a pad. q/k/v (and an expert's gate/up) share one buffer.
  virtual void on_linear_input(const ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                               const std::uint8_t* real) {}

  // The router's choice for each row: `k` experts (ascending by slot) and their mixing weights.
  virtual void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                          std::int64_t k, const std::uint8_t* real) {}
};

}  // namespace moeslim::model
