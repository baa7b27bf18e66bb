#include "pipeline/layer_statistics.h"

#include <algorithm>

#include "core/error.h"

namespace moeslim::pipeline {

ObservationCollector::ObservationCollector(const quant::ObservationRequest& request, bool include_padding) {
  for (const model::ModuleId& m : request.channel_stats) stats_.emplace(m, quant::ChannelStatsObserver(include_padding));
  for (const model::ModuleId& m : request.input_rows) rows_.emplace(m, InputRows());
}

bool ObservationCollector::wants_linear_input(const model::ModuleId& module) const {
  return stats_.count(module) > 0 || rows_.count(module) > 0;
}

void ObservationCollector::on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows,
                                           std::int64_t cols, const std::uint8_t* real) {
  if (auto it = stats_.find(module); it != stats_.end()) {
    try {
      it->second.observe(x, rows, cols, real);
    } catch (const Error& e) {
      throw Error(e.code(), e.detail(), {}, model::hf_module_name(module) + " input");
    }
  }
  if (auto it = rows_.find(module); it != rows_.end()) {
    InputRows& in = it->second;
    if (in.cols < 0) in.cols = cols;
    if (in.cols != cols) {
      throw Error(ErrorCode::kInternal, "input width changed between batches", "", model::hf_module_name(module));
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      if (real != nullptr && real[r] == 0) continue;
      in.values.insert(in.values.end(), x + r * cols, x + (r + 1) * cols);
    }
  }
}

void ObservationCollector::take(quant::LayerObservations& out) {
  for (auto& [module, stats] : stats_) out.channel_stats.insert_or_assign(module, std::move(stats));
  for (auto& [module, in] : rows_) {
    if (in.cols < 0 || in.values.empty()) {
      throw Error(ErrorCode::kInternal, "no input rows collected", "", model::hf_module_name(module));
    }
    Tensor t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(in.values.size()) / in.cols, in.cols});
    std::copy(in.values.begin(), in.values.end(), t.mutable_data<float>());
    out.input_rows.insert_or_assign(module, std::move(t));
    std::vector<float>().swap(in.values);
  }
}

void ExpertTokenCounter::on_routing(std::int64_t, const std::int32_t* experts, const float*, std::int64_t rows,
                                    std::int64_t k, const std::uint8_t* real) {
  for (std::int64_t r = 0; r < rows; ++r) {
    if (real != nullptr && real[r] == 0) continue;
    for (std::int64_t s = 0; s < k; ++s) ++counts_[static_cast<std::size_t>(experts[r * k + s])];
  }
}

ObserverFanOut::ObserverFanOut(std::vector<model::ForwardObserver*> observers) {
  for (model::ForwardObserver* o : observers) {
    if (o != nullptr) observers_.push_back(o);
  }
}

bool ObserverFanOut::wants_linear_input(const model::ModuleId& module) const {
  return std::any_of(observers_.begin(), observers_.end(), [&](const auto* o) { return o->wants_linear_input(module); });
}

bool ObserverFanOut::accepts_concurrent_modules() const {
  return std::all_of(observers_.begin(), observers_.end(), [](const auto* o) { return o->accepts_concurrent_modules(); });
}

void ObserverFanOut::on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows,
                                     std::int64_t cols, const std::uint8_t* real) {
  for (auto* o : observers_) {
    if (o->wants_linear_input(module)) o->on_linear_input(module, x, rows, cols, real);
  }
}

void ObserverFanOut::on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights,
                                std::int64_t rows, std::int64_t k, const std::uint8_t* real) {
  for (auto* o : observers_) o->on_routing(layer, experts, weights, rows, k, real);
}

}  // namespace moeslim::pipeline
