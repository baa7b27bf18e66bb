// How a layer calls its linears and shows their inputs to an observer, shared by the attention and MoE code.
#pragma once

#include <cstdint>

#include "core/profiler.h"
#include "model/linear.h"
#include "model/module_id.h"
#include "model/observer.h"

namespace moeslim::model {

// A linear's forward, timed under `kind` with its FLOP count when profiling is on.
inline void run_linear(const Linear& linear, const float* x, std::int64_t rows, float* y, ProfileKind kind) {
  ProfileScope scope(kind,
                     2.0 * static_cast<double>(rows) * static_cast<double>(linear.in_features()) *
                         static_cast<double>(linear.out_features()),
                     linear.integer_arithmetic() ? Arithmetic::kInteger : Arithmetic::kFloat);
  linear.forward(x, rows, y);
}

// Shows `module`'s input to the observer, if there is one and it wants it.
inline void observe_input(ForwardObserver* observer, const ModuleId& module, const float* x, std::int64_t rows,
                          std::int64_t cols, const std::uint8_t* real) {
  if (observer != nullptr && observer->wants_linear_input(module)) {
    observer->on_linear_input(module, x, rows, cols, real);
  }
}

}  // namespace moeslim::model
