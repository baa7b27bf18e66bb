#include "quant/step_registry.h"

#include <fmt/format.h>

#include "core/error.h"

namespace moeslim::quant {

// Each step's parser, in its own file.
StepList parse_rotate_step(const StepInput& input);
StepList parse_m4_step(const StepInput& input);
StepList parse_flex_smooth_step(const StepInput& input);
StepList parse_quantize_step(const StepInput& input);
std::shared_ptr<const WeightMethod> parse_minmax_weight(const StepInput& group, const io::yaml::MapReader& keys);
std::shared_ptr<const WeightMethod> parse_ssz_weight(const StepInput& group, const io::yaml::MapReader& keys);
std::shared_ptr<const WeightMethod> parse_gptq_weight(const StepInput& group, const io::yaml::MapReader& keys);

const std::vector<StepEntry>& step_registry() {
  static const std::vector<StepEntry> registry = {
      {"rotate", "", 0, &parse_rotate_step, "Hadamard rotation of the residual stream and the V heads (--rot)"},
      {"smooth", "m4", 1, &parse_m4_step, "msModelSlim's W8A8 anti-outlier smoothing (v0)"},
      {"smooth", "flex_smooth", 1, &parse_flex_smooth_step, "msModelSlim's W4A8 smoothing with the α/β search (v1)"},
      {"quantize", "", 2, &parse_quantize_step, "which linears get which scheme and weight method"},
  };
  return registry;
}

const std::vector<WeightMethodEntry>& weight_method_registry() {
  static const std::vector<WeightMethodEntry> registry = {
      {"minmax", {}, &parse_minmax_weight, "per-channel max |W| scales (v0 or v1 formulas by apiversion)"},
      {"ssz", {"ssz_steps"}, &parse_ssz_weight, "least-squares refinement of the minmax scale (v1)"},
      {"gptq",
       {"gptq_dampening", "gptq_act_order", "gptq_min_tokens", "gptq_fallback"},
       &parse_gptq_weight,
       "GPTQ: error compensation through the Hessian of each linear's calibration inputs (v1)"},
  };
  return registry;
}

std::vector<std::string> process_keys() {
  std::vector<std::string> keys;
  for (const StepEntry& e : step_registry()) {
    if (keys.empty() || keys.back() != e.key) keys.push_back(e.key);
  }
  return keys;
}

StepList parse_process_entry(const std::string& key, const StepInput& value) {
  std::vector<std::string> methods;
  for (const StepEntry& e : step_registry()) {
    if (key == e.key && *e.method != '\0') methods.push_back(e.method);
  }
  if (methods.empty()) {
    for (const StepEntry& e : step_registry()) {
      if (key == e.key) return e.parse(value);
    }
    throw Error(ErrorCode::kInternal, "no step registered for this process key", value.src.file(), value.path);
  }
  // A family keyed by method (smooth): the method picks the entry, whose parser then reads every key.
  const io::yaml::Source& src = value.src;
  if (!value.node.IsMap()) {
    src.fail(value.path,
             fmt::format("expected a mapping with a method ({}), got {}", fmt::join(methods, ", "),
                         io::yaml::describe(value.node)),
             value.node);
  }
  const std::string method_path = io::yaml::key_path(value.path, "method");
  const YAML::Node method_node = static_cast<const YAML::Node&>(value.node)["method"];
  if (!method_node.IsDefined()) {
    src.fail(method_path, "missing required key 'method' in '" + value.path + "'", value.node);
  }
  const std::string method = src.as_choice(method_node, method_path, methods);
  for (const StepEntry& e : step_registry()) {
    if (key == e.key && method == e.method) return e.parse(value);
  }
  throw Error(ErrorCode::kInternal, "no step registered for this method", src.file(), method_path);
}

}  // namespace moeslim::quant
