// Forward observers the pipeline attaches while it runs a layer: m4's channel statistics of q_proj's and
// o_proj's inputs, the calibration batches of the static linears, per-expert token counts, and a fan-out
// that lets several of them watch one pass.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/observer.h"
#include "quant/calibration_linear.h"
#include "quant/observers.h"

namespace moeslim::pipeline {

// Channel statistics (max, min, max|x|) of the inputs of the modules it is told to watch.
class ChannelStatsCollector : public model::ForwardObserver {
 public:
  ChannelStatsCollector(std::vector<std::string> modules, bool include_padding);
  bool wants_linear_input(const std::string& module) const override;
  void on_linear_input(const std::string& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  const quant::ChannelStatsObserver& stats(const std::string& module) const;

 private:
  std::map<std::string, quant::ChannelStatsObserver> stats_;
};

// Every real input row of the modules it watches, kept in order (flex_smooth's α/β search needs the rows
// themselves, not only their statistics). Memory: rows × cols float32 per module.
class InputRowCollector : public model::ForwardObserver {
 public:
  explicit InputRowCollector(std::vector<std::string> modules);
  bool wants_linear_input(const std::string& module) const override { return rows_.count(module) > 0; }
  void on_linear_input(const std::string& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  // F32 [rows, cols]; kInternal if the module was not watched or saw no row.
  Tensor rows(const std::string& module) const;

 private:
  std::map<std::string, std::vector<float>> rows_;
  std::map<std::string, std::int64_t> cols_;
};

// Hands each static linear its input batch before the linear runs on it (StaticCalibrationLinear::observe).
class CalibrationFeeder : public model::ForwardObserver {
 public:
  void add(const std::string& module, quant::StaticCalibrationLinear* linear) { linears_[module] = linear; }
  bool wants_linear_input(const std::string& module) const override { return linears_.count(module) > 0; }
  void on_linear_input(const std::string& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  const std::map<std::string, quant::StaticCalibrationLinear*>& linears() const { return linears_; }

 private:
  std::map<std::string, quant::StaticCalibrationLinear*> linears_;
};

// Tokens routed to each expert (real tokens only), counted over a layer's calibration run.
class ExpertTokenCounter : public model::ForwardObserver {
 public:
  explicit ExpertTokenCounter(std::int64_t num_experts) : counts_(static_cast<std::size_t>(num_experts), 0) {}
  bool wants_linear_input(const std::string&) const override { return false; }
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                  std::int64_t k, const std::uint8_t* real) override;
  const std::vector<std::int64_t>& counts() const { return counts_; }

 private:
  std::vector<std::int64_t> counts_;
};

// Forwards every event to each of `observers` (in order) that wants it.
class ObserverFanOut : public model::ForwardObserver {
 public:
  explicit ObserverFanOut(std::vector<model::ForwardObserver*> observers) : observers_(std::move(observers)) {}
  bool wants_linear_input(const std::string& module) const override;
  void on_linear_input(const std::string& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                  std::int64_t k, const std::uint8_t* real) override;

 private:
  std::vector<model::ForwardObserver*> observers_;
};

}  // namespace moeslim::pipeline
