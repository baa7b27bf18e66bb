#include "quant/linear_hessians.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/forward_scratch.h"
#include "model/layer_loader.h"
#include "model/moe_block.h"

namespace moeslim::quant {

using model::ModuleId;
using model::ModuleRole;

namespace {

kernels::GemmPrecision gram_precision(const LayerContext& c) {
  return model::gemm_precision(c.settings.float_precision);
}

// H from a sum that saw at least one row.
std::shared_ptr<InputHessian> finished(HessianAccumulator&& sum) {
  auto h = std::make_shared<InputHessian>();
  h->rows = sum.rows();
  h->values = std::move(sum).hessian();
  return h;
}

// Each of `modules` with its input owner's Hessian, where there is one.
LinearHessians per_module(const std::set<ModuleId>& modules,
                          const std::map<ModuleId, std::shared_ptr<const InputHessian>>& by_owner) {
  LinearHessians out;
  for (const ModuleId& m : modules) {
    const auto it = by_owner.find(input_owner(m));
    if (it != by_owner.end()) out[m] = it->second;
  }
  return out;
}

}  // namespace

ModuleId input_owner(const ModuleId& module) {
  ModuleId owner = module;
  if (module.role == ModuleRole::kQProj || module.role == ModuleRole::kVProj) owner.role = ModuleRole::kKProj;
  if (module.role == ModuleRole::kUpProj) owner.role = ModuleRole::kGateProj;
  return owner;
}

HessianObserver::HessianObserver(const std::set<ModuleId>& modules, kernels::GemmPrecision precision)
    : modules_(modules), precision_(precision) {}

bool HessianObserver::wants_linear_input(const ModuleId& module) const {
  if (input_owner(module) != module) return false;  // its owner's input is the same rows
  return std::any_of(modules_.begin(), modules_.end(), [&](const ModuleId& m) { return input_owner(m) == module; });
}

void HessianObserver::on_linear_input(const ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                                      const std::uint8_t* real) {
  if (!wants_linear_input(module)) return;
  auto it = sums_.find(module);
  if (it == sums_.end()) it = sums_.emplace(module, HessianAccumulator(cols, precision_)).first;
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
    if (sum.rows() > 0) by_owner[owner] = finished(std::move(sum));
  }
  sums_.clear();
  return per_module(modules_, by_owner);
}

LinearHessians layer_input_hessians(const LayerContext& c, const std::set<ModuleId>& modules) {
  if (c.observations == nullptr) {
    throw Error(ErrorCode::kInternal, "the float pass's observations are not set: Hessians cannot be taken", "",
                "layer " + std::to_string(c.layer));
  }
  std::map<ModuleId, std::shared_ptr<const InputHessian>> by_owner;
  for (const ModuleId& m : modules) {
    const ModuleId owner = input_owner(m);
    if (by_owner.count(owner) > 0) continue;
    const Tensor& rows = c.observations->rows(owner);  // the real rows, as the float pass saw them
    const std::int64_t n = rows.dim(0), cols = rows.dim(1);
    if (n == 0) continue;
    static const InputChange kUnchanged;
    const auto change = c.input_changes.find(owner);
    const InputChange& ch = change == c.input_changes.end() ? kUnchanged : change->second;
    HessianAccumulator sum(cols, gram_precision(c));
    if (ch.shift.empty()) {
      sum.add(rows.data<float>(), n, cols);
    } else {
      // The rows the linear reads are shifted (m4): summed from a shifted copy, not by expanding Σ(x−t)(x−t)ᵀ,
      // whose terms cancel where the shift is large against the spread.
      Tensor shifted = rows.clone();
      float* x = shifted.mutable_data<float>();
      for (std::int64_t r = 0; r < n; ++r) {
        for (std::int64_t j = 0; j < cols; ++j) x[r * cols + j] -= ch.shift[static_cast<std::size_t>(j)];
      }
      sum.add(x, n, cols);
    }
    const std::shared_ptr<InputHessian> h = finished(std::move(sum));
    // Channel j is divided by d_j: H_ij / (d_i·d_j).
    if (!ch.divisor.empty()) {
      const std::vector<float>& d = ch.divisor;
      float* v = h->values.data();
      for (std::int64_t i = 0; i < cols; ++i) {
        for (std::int64_t j = 0; j < cols; ++j) {
          v[i * cols + j] /= d[static_cast<std::size_t>(i)] * d[static_cast<std::size_t>(j)];
        }
      }
    }
    by_owner[owner] = h;
  }
  return per_module(modules, by_owner);
}

LinearHessians expert_input_hessians(const LayerContext& c, std::int64_t expert, const std::set<ModuleId>& modules,
                                     const Tensor& gate_weight, const Tensor& up_weight) {
  if (c.expert_inputs == nullptr) {
    throw Error(ErrorCode::kInternal, "an expert group's inputs are not set: its Hessians cannot be taken", "",
                "layer " + std::to_string(c.layer) + " expert " + std::to_string(expert));
  }
  HessianObserver observer(modules, gram_precision(c));
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
  // down_proj's input is the expert's own intermediate activation: run its gate and up_proj and let the
  // observer see both inputs; down_proj itself need not exist (swiglu_forward stops before it without an
  // output).
  const model::LinearFactory make_float = model::float_linear_factory(c.settings.float_precision);
  const ModuleId gate{c.layer, ModuleRole::kGateProj, expert}, up{c.layer, ModuleRole::kUpProj, expert};
  model::SwiGluMlp mlp;
  mlp.gate_proj = make_float(gate, gate_weight, c.bias(gate));
  mlp.up_proj = make_float(up, up_weight, c.bias(up));
  model::ForwardScratch scratch;
  model::swiglu_forward(mlp, c.layer, expert, x.data<float>(), rows, hidden, real.data(), &observer, scratch,
                        /*y=*/nullptr);
  return observer.take();
}

}  // namespace moeslim::quant
