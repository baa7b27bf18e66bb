#include "pipeline/layer_statistics.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace moeslim::pipeline {

ObservationCollector::ObservationCollector(const quant::ObservationRequest& request, bool include_padding,
                                           std::int64_t real_rows)
    : real_rows_(real_rows) {
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
    // Written in place: no growing buffer to copy (hundreds of MB at 30B shapes) and no second copy at take().
    InputRows& in = it->second;
    if (in.values.empty()) in.values = Tensor::zeros(DType::kF32, {real_rows_, cols});
    if (in.values.dim(1) != cols) {
      throw Error(ErrorCode::kInternal, "input width changed between batches", "", model::hf_module_name(module));
    }
    float* out = in.values.mutable_data<float>();
    for (std::int64_t r = 0; r < rows; ++r) {
      if (real != nullptr && real[r] == 0) continue;
      if (in.filled == real_rows_) {
        throw Error(ErrorCode::kInternal, "more real input rows than the pass has (" + std::to_string(real_rows_) + ")",
                    "", model::hf_module_name(module));
      }
      std::copy(x + r * cols, x + (r + 1) * cols, out + in.filled * cols);
      ++in.filled;
    }
  }
}

void ObservationCollector::take(quant::LayerObservations& out) {
  for (auto& [module, stats] : stats_) out.channel_stats.insert_or_assign(module, std::move(stats));
  for (auto& [module, in] : rows_) {
    if (in.values.empty() || in.filled == 0) {
      throw Error(ErrorCode::kInternal, "no input rows collected", "", model::hf_module_name(module));
    }
    if (in.filled < real_rows_) {  // a module that sees only some tokens (an expert): keep the rows it saw
      const std::int64_t cols = in.values.dim(1);
      Tensor seen = Tensor::zeros(DType::kF32, {in.filled, cols});
      std::copy(in.values.data<float>(), in.values.data<float>() + in.filled * cols, seen.mutable_data<float>());
      in.values = std::move(seen);
    }
    out.input_rows.insert_or_assign(module, std::move(in.values));
    in.values = Tensor();
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
