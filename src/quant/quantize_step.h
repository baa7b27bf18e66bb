// The `quantize` step: which linears get which scheme and weight method. A list of groups, first match wins;
// linears no group claims stay float (the router always does). Each group's weight method is a registry entry
// (weight_method.h), so a new weight quantizer is one file plus one registry line.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "quant/step.h"
#include "quant/weight_method.h"

namespace moeslim::quant {

struct QuantGroup {
  std::vector<std::string> include;  // fnmatch globs on Hugging Face module names; at least one
  std::vector<std::string> exclude;
  QuantScheme scheme = QuantScheme::kW8A8Dynamic;  // never kFloat
  WeightGrid grid;  // kW4A16's group size and symmetry (`group_size`, `symmetric`); the default for the others
  std::shared_ptr<const WeightMethod> method;
  bool matches(const std::string& module) const;  // some include matches and no exclude matches
};

class QuantizeStep final : public LayerStep {
 public:
  explicit QuantizeStep(std::vector<QuantGroup> groups) : groups_(std::move(groups)) {}

  std::string name() const override { return "quantize"; }
  nlohmann::ordered_json settings() const override;
  std::string phase() const override { return "weight quantization"; }
  // A method fitted to data (GPTQ) reads the float pass's input rows of the non-expert linears it quantizes.
  bool observes() const override;
  void request(const LayerContext& context, ObservationRequest& request) const override;
  // Every linear but a MoE layer's experts; those in apply_to_experts, group by group.
  void apply(LayerContext& context) const override;
  void apply_to_experts(LayerContext& context, model::ExpertRange group) const override;

  const std::vector<QuantGroup>& groups() const { return groups_; }
  // The group that claims `module`, or nullptr (it stays float). lm_head is always float.
  const QuantGroup* group_for(const model::ModuleId& module) const;
  const QuantGroup* group_for(const std::string& hf_module) const;
  // The scheme `module` is written in (kFloat when no group claims it).
  QuantScheme scheme_for(const model::ModuleId& module) const;

 private:
  // The modules whose group's method reads the Hessian of their inputs.
  std::set<model::ModuleId> modules_needing_hessians(const std::vector<model::ModuleId>& modules) const;
  // One linear by its group's method (or left float), its mapped weight released after. `weight`: the
  // module's context.weight_to_quantize().
  QuantizedWeight quantize_linear(const LayerContext& context, const model::ModuleId& module, const Tensor& weight,
                                  const InputHessian* hessian) const;
  // The results into context.linears (and their fallbacks into the report), in `modules`' order.
  static void keep(LayerContext& context, const std::vector<model::ModuleId>& modules,
                   std::vector<QuantizedWeight>& quantized);

  std::vector<QuantGroup> groups_;
};

// A linear left in float: its weight and bias as they are.
QuantizedLinear float_linear(const model::ModuleId& module, const Tensor& weight, const Tensor& bias);

}  // namespace moeslim::quant
