#include "quant/linear_hessians.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/forward_scratch.h"
#include "model/grouped_layer_pass.h"
#include "model/layer_loader.h"
#include "model/moe_block.h"

namespace moeslim::quant {

using model::ModuleId;
using model::ModuleRole;

ModuleId input_owner(const ModuleId& module) {
  ModuleId owner = module;
  if (module.role == ModuleRole::kKProj || module.role == ModuleRole::kVProj) owner.role = ModuleRole::kQProj;
  if (module.role == ModuleRole::kUpProj) owner.role = ModuleRole::kGateProj;
  return owner;
}

HessianObserver::HessianObserver(const std::set<ModuleId>& modules) : modules_(modules) {}

bool HessianObserver::wants_linear_input(const ModuleId& module) const {
  if (input_owner(module) != module) return false;  // its owner's input is the same rows
  return std::any_of(modules_.begin(), modules_.end(), [&](const ModuleId& m) { return input_owner(m) == module; });
}

void HessianObserver::on_linear_input(const ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                                      const std::uint8_t* real) {
  if (!wants_linear_input(module)) return;
  auto it = sums_.find(module);
  if (it == sums_.end()) it = sums_.emplace(module, HessianAccumulator(cols)).first;
  const bool all_real = real == nullptr || std::all_of(real, real + rows, [](std::uint8_t r) { return r != 0; });
  if (all_real) {
    it->second.add(x, rows, cols);
    return;
  }
  real_rows_.clear();
  std::int64_t kept = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (real[r] == 0) continue;
    real_rows_.insert(real_rows_.end(), x + r * cols, x + (r + 1) * cols);
    ++kept;
  }
  if (kept > 0) it->second.add(real_rows_.data(), kept, cols);
}

LinearHessians HessianObserver::take() {
  std::map<ModuleId, std::shared_ptr<const InputHessian>> by_owner;
  for (auto& [owner, sum] : sums_) {
    const std::int64_t rows = sum.rows();
    if (rows == 0) continue;
    by_owner[owner] = std::make_shared<const InputHessian>(InputHessian{std::move(sum).hessian(), rows});
  }
  LinearHessians out;
  for (const ModuleId& m : modules_) {
    const auto it = by_owner.find(input_owner(m));
    if (it != by_owner.end()) out[m] = it->second;
  }
  sums_.clear();
  return out;
}

LinearHessians layer_input_hessians(const LayerContext& c, const std::set<ModuleId>& modules) {
  if (c.pass_input.hidden == nullptr || c.pass_input.layout == nullptr) {
    throw Error(ErrorCode::kInternal, "the layer's pass input is not set: its Hessians cannot be taken", "",
                "layer " + std::to_string(c.layer));
  }
  // The layer as it now is: every non-expert linear with the edits the steps made or planned.
  model::LayerTensors tensors = c.tensors;
  for (const ModuleId& m : model::layer_linears(c.config, c.layer)) {
    if (!m.is_expert()) tensors.insert_or_assign(model::hf_weight_name(m), c.weight_to_quantize(m));
  }
  const model::DecoderLayer layer = model::build_layer_without_experts(
      c.config, c.layer, tensors, model::float_linear_factory(c.settings.float_precision));
  HessianObserver observer(modules);
  Tensor hidden = c.pass_input.hidden->clone();
  model::run_layer_without_experts(c.config, layer, hidden, *c.pass_input.layout, c.pass_input.batch_size,
                                   &observer);
  return observer.take();
}

LinearHessians expert_input_hessians(const LayerContext& c, std::int64_t expert, const std::set<ModuleId>& modules) {
  if (c.expert_inputs == nullptr) {
    throw Error(ErrorCode::kInternal, "an expert group's inputs are not set: its Hessians cannot be taken", "",
                "layer " + std::to_string(c.layer) + " expert " + std::to_string(expert));
  }
  HessianObserver observer(modules);
  std::vector<std::uint8_t> real;
  const Tensor x = c.expert_inputs->gather(expert, &real);
  const std::int64_t rows = x.dim(0), hidden = x.dim(1);
  if (rows == 0) return observer.take();
  const bool wants_down = std::any_of(modules.begin(), modules.end(),
                                      [](const ModuleId& m) { return m.role == ModuleRole::kDownProj; });
  if (!wants_down) {
    observer.on_linear_input({c.layer, ModuleRole::kGateProj, expert}, x.data<float>(), rows, hidden, real.data());
    return observer.take();
  }
  // down_proj's input is the expert's own intermediate activation: run the expert (its current float weights)
  // and let the observer see both inputs.
  model::LayerTensors weights;
  for (const ModuleId& m : model::expert_linears(c.layer, expert, expert + 1)) {
    weights.emplace(model::hf_weight_name(m), c.weight_to_quantize(m));
  }
  const model::SwiGluMlp mlp =
      model::build_expert(c.layer, expert, weights, model::float_linear_factory(c.settings.float_precision));
  model::ForwardScratch scratch;
  Tensor y = Tensor::zeros(DType::kF32, {rows, hidden});
  model::swiglu_forward(mlp, c.layer, expert, x.data<float>(), rows, hidden, real.data(), &observer, scratch,
                        y.mutable_data<float>());
  return observer.take();
}

}  // namespace moeslim::quant
