#include "pipeline/layer_statistics.h"

#include <algorithm>

#include "core/error.h"

namespace moeslim::pipeline {

ChannelStatsCollector::ChannelStatsCollector(std::vector<std::string> modules, bool include_padding) {
  for (auto& m : modules) stats_.emplace(std::move(m), quant::ChannelStatsObserver(include_padding));
}

bool ChannelStatsCollector::wants_linear_input(const std::string& module) const { return stats_.count(module) > 0; }

void ChannelStatsCollector::on_linear_input(const std::string& module, const float* x, std::int64_t rows,
                                            std::int64_t cols, const std::uint8_t* real) {
  auto it = stats_.find(module);
  if (it == stats_.end()) return;
  try {
    it->second.observe(x, rows, cols, real);
  } catch (const Error& e) {
    throw Error(e.code(), e.detail(), {}, module + " input");
  }
}

const quant::ChannelStatsObserver& ChannelStatsCollector::stats(const std::string& module) const {
  auto it = stats_.find(module);
  if (it == stats_.end()) throw Error(ErrorCode::kInternal, "no statistics collected", "", module);
  return it->second;
}

InputRowCollector::InputRowCollector(std::vector<std::string> modules) {
  for (auto& m : modules) rows_.emplace(std::move(m), std::vector<float>());
}

void InputRowCollector::on_linear_input(const std::string& module, const float* x, std::int64_t rows,
                                        std::int64_t cols, const std::uint8_t* real) {
  auto it = rows_.find(module);
  if (it == rows_.end()) return;
  auto [c, inserted] = cols_.emplace(module, cols);
  if (c->second != cols) throw Error(ErrorCode::kInternal, "input width changed between batches", "", module);
  for (std::int64_t r = 0; r < rows; ++r) {
    if (real != nullptr && real[r] == 0) continue;
    it->second.insert(it->second.end(), x + r * cols, x + (r + 1) * cols);
  }
}

Tensor InputRowCollector::rows(const std::string& module) const {
  const auto it = rows_.find(module);
  const auto c = cols_.find(module);
  if (it == rows_.end() || c == cols_.end() || it->second.empty()) {
    throw Error(ErrorCode::kInternal, "no input rows collected", "", module);
  }
  const std::int64_t cols = c->second;
  Tensor t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(it->second.size()) / cols, cols});
  std::copy(it->second.begin(), it->second.end(), t.mutable_data<float>());
  return t;
}

void CalibrationFeeder::on_linear_input(const std::string& module, const float* x, std::int64_t rows,
                                        std::int64_t cols, const std::uint8_t* real) {
  auto it = linears_.find(module);
  if (it != linears_.end()) it->second->observe(x, rows, cols, real);
}

void ExpertTokenCounter::on_routing(std::int64_t, const std::int32_t* experts, const float*, std::int64_t rows,
                                    std::int64_t k, const std::uint8_t* real) {
  for (std::int64_t r = 0; r < rows; ++r) {
    if (real != nullptr && real[r] == 0) continue;
    for (std::int64_t s = 0; s < k; ++s) ++counts_[static_cast<std::size_t>(experts[r * k + s])];
  }
}

bool ObserverFanOut::wants_linear_input(const std::string& module) const {
  for (const auto* o : observers_) {
    if (o->wants_linear_input(module)) return true;
  }
  return false;
}

void ObserverFanOut::on_linear_input(const std::string& module, const float* x, std::int64_t rows,
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
