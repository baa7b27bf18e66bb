#include "quant/step.h"

#include "core/error.h"

namespace moeslim::quant {

const ChannelStatsObserver& LayerObservations::stats(const model::ModuleId& module) const {
  const auto it = channel_stats.find(module);
  if (it == channel_stats.end()) {
    throw Error(ErrorCode::kInternal, "no channel statistics were requested for this module", "",
                model::hf_module_name(module));
  }
  return it->second;
}

const Tensor& LayerObservations::rows(const model::ModuleId& module) const {
  const auto it = input_rows.find(module);
  if (it == input_rows.end()) {
    throw Error(ErrorCode::kInternal, "no input rows were requested for this module", "",
                model::hf_module_name(module));
  }
  return it->second;
}

Tensor& LayerContext::weight(const model::ModuleId& module) {
  if (module.is_expert() && !expert_basis_changes.empty()) {
    throw Error(ErrorCode::kInternal, "an expert weight with a pending change of basis is read with read_weight", "",
                model::hf_weight_name(module));
  }
  const auto it = tensors.find(model::hf_weight_name(module));
  if (it == tensors.end()) throw Error(ErrorCode::kInternal, "layer tensor not loaded", "", model::hf_weight_name(module));
  return it->second;
}

const Tensor& LayerContext::weight(const model::ModuleId& module) const {
  return const_cast<LayerContext*>(this)->weight(module);
}

Tensor LayerContext::bias(const model::ModuleId& module) const {
  const auto it = tensors.find(model::hf_bias_name(module));
  return it == tensors.end() ? Tensor() : it->second;
}

Tensor LayerContext::read_weight(const model::ModuleId& module) const {
  if (!module.is_expert()) return weight(module);
  const auto it = tensors.find(model::hf_weight_name(module));
  if (it == tensors.end()) throw Error(ErrorCode::kInternal, "layer tensor not loaded", "", model::hf_weight_name(module));
  Tensor w = it->second;
  for (const DeferredWeightEdit& change : expert_basis_changes) w = change(module, w);
  return w;
}

Tensor LayerContext::weight_to_quantize(const model::ModuleId& module) const {
  Tensor w = read_weight(module);
  for (const DeferredWeightEdit& edit : deferred_edits) w = edit(module, w);
  return w;
}

Tensor& LayerContext::editable_weight(const model::ModuleId& module) {
  Tensor& w = weight(module);
  w = w.to_f32();  // always a new tensor: the old one may be a mapped view or shared with the caller
  return w;
}

namespace {

// `v` (initialised to `fill` when empty) checked against a change of `width` channels.
std::vector<float>& channels(std::vector<float>& v, std::size_t width, float fill, const model::ModuleId& module) {
  if (v.empty()) v.assign(width, fill);
  if (v.size() != width) {
    throw Error(ErrorCode::kInternal, "input change of another width", "", model::hf_module_name(module));
  }
  return v;
}

}  // namespace

void divide_input(LayerContext& c, const model::ModuleId& module, const std::vector<float>& s) {
  std::vector<float>& d = channels(c.input_changes[module].divisor, s.size(), 1.0f, module);
  for (std::size_t j = 0; j < s.size(); ++j) d[j] *= s[j];
}

void shift_input(LayerContext& c, const model::ModuleId& module, const std::vector<float>& t) {
  InputChange& change = c.input_changes[module];
  std::vector<float>& shift = channels(change.shift, t.size(), 0.0f, module);
  // (x − S)/D − t = (x − (S + t·D))/D
  for (std::size_t j = 0; j < t.size(); ++j) shift[j] += change.divisor.empty() ? t[j] : t[j] * change.divisor[j];
}

}  // namespace moeslim::quant
