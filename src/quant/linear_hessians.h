// The Hessians of linears' inputs that data-fitted weight methods (GPTQ, weight_method.h) read, in the basis each
// linear reads its input after every earlier step changed the layer:
//   attention (and a dense MLP): the float pass's input rows of the linear (rotated already, as the rotation
//     comes before it), each channel shifted and divided as the smoothing steps have since changed the
//     linear's input (LayerContext::input_changes). In v1 recipes these are the rows the quantized pass feeds
//     it (it takes the float pass's input); in v0 ones, the rows of the set every float-pass statistic is taken
//     on (the anti-outlier set, msModelSlim's anti_dataset);
//   an expert: its routed rows of the running quantized pass (LayerContext::expert_inputs) for gate/up_proj, and
//     for down_proj the same rows through the expert's current float gate/up_proj.
// Only real tokens count (pads are not text). The products are summed at the precision of the run's float
// passes (RunSettings::float_precision: bf16 by default, as the float pass that gives the layer's statistics).
// Linears that read one input (q/k/v_proj; gate/up_proj) share one Hessian, computed once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "model/module_id.h"
#include "kernels/gemm.h"
#include "model/observer.h"
#include "quant/hessian.h"
#include "quant/step.h"
#include "quant/weight_method.h"

namespace moeslim::quant {

using LinearHessians = std::map<model::ModuleId, std::shared_ptr<const InputHessian>>;

// The module whose input stands for `module`'s: k_proj for q/v_proj (the module flex_smooth observes for
// norm-linear, so a recipe with both keeps the float pass's rows once), gate_proj for up_proj, else itself.
model::ModuleId input_owner(const model::ModuleId& module);

// Sums the Hessian of each requested module's input over the real rows it sees. Modules of one layer run one
// at a time (it is not for concurrent experts: give each expert's task its own).
class HessianObserver final : public model::ForwardObserver {
 public:
  // `precision`: of the products summed (kernels::gram_matrix).
  HessianObserver(const std::set<model::ModuleId>& modules, kernels::GemmPrecision precision);
  bool wants_linear_input(const model::ModuleId& module) const override;
  void on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override;
  // One entry per requested module; a module no real row reached has none.
  LinearHessians take();

 private:
  std::set<model::ModuleId> modules_;
  kernels::GemmPrecision precision_;
  std::map<model::ModuleId, HessianAccumulator> sums_;  // by input_owner
  std::vector<float> real_rows_;
};

// The Hessians of `modules` (non-expert linears of c.layer) from c.observations' input rows of their input
// owners (QuantizeStep::request asks for them).
LinearHessians layer_input_hessians(const LayerContext& c, const std::set<model::ModuleId>& modules);

// The Hessians of `modules` (linears of one expert) on its rows of the running pass (c.expert_inputs must be
// set). `gate_weight`, `up_weight`: the expert's current float weights (c.weight_to_quantize), which its
// caller quantizes too, so they are made once. Runs its GEMMs on the calling thread's kernels, so it may run
// as one task of many.
LinearHessians expert_input_hessians(const LayerContext& c, std::int64_t expert,
                                     const std::set<model::ModuleId>& modules, const Tensor& gate_weight,
                                     const Tensor& up_weight);

}  // namespace moeslim::quant
