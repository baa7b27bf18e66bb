// Forward observers the layer quantizer attaches while it runs a layer: what the steps asked to see of the
// float pass (channel statistics, input rows), the tokens routed to each expert, and a fan-out that lets
// several of them watch one pass.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "core/tensor.h"
#include "model/observer.h"
#include "quant/step.h"

namespace moeslim::pipeline {

// Collects what an ObservationRequest asks for into LayerObservations.
class ObservationCollector : public model::ForwardObserver {
 public:
  // real_rows: how many real rows the observed pass has (TokenLayout::real_rows()), the most any module can
  // see; input rows are written straight into a tensor of that many rows, allocated at the first batch (when
  // the width is known), and handed over as is when the module saw every row (attention inputs).
  ObservationCollector(const quant::ObservationRequest& request, bool include_padding, std::int64_t real_rows);
  bool wants_linear_input(const model::ModuleId& module) const override;
  void on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  // Every module's entry exists from the start, so a call touches only its own module's state.
  bool accepts_concurrent_modules() const override { return true; }
  // Moves what was collected into `out` (channel_stats and input_rows; expert_tokens untouched).
  void take(quant::LayerObservations& out);

 private:
  struct InputRows {
    Tensor values;           // F32 [real_rows_, cols]: real rows only, in order
    std::int64_t filled = 0;  // rows written so far
  };
  std::int64_t real_rows_ = 0;
  std::map<model::ModuleId, quant::ChannelStatsObserver> stats_;
  std::map<model::ModuleId, InputRows> rows_;
};

// Tokens routed to each expert (real tokens only), counted over one pass.
class ExpertTokenCounter : public model::ForwardObserver {
 public:
  explicit ExpertTokenCounter(std::int64_t num_experts) : counts_(static_cast<std::size_t>(num_experts), 0) {}
  bool wants_linear_input(const model::ModuleId&) const override { return false; }
  bool accepts_concurrent_modules() const override { return true; }
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                  std::int64_t k, const std::uint8_t* real) override;
  const std::vector<std::int64_t>& counts() const { return counts_; }

 private:
  std::vector<std::int64_t> counts_;
};

// Forwards every event to each of `observers` (in order, nulls skipped) that wants it.
class ObserverFanOut : public model::ForwardObserver {
 public:
  explicit ObserverFanOut(std::vector<model::ForwardObserver*> observers);
  bool wants_linear_input(const model::ModuleId& module) const override;
  void on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  bool accepts_concurrent_modules() const override;  // when every one of them does
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                  std::int64_t k, const std::uint8_t* real) override;

 private:
  std::vector<model::ForwardObserver*> observers_;
};

}  // namespace moeslim::pipeline
