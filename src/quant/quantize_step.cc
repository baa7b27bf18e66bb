#include "quant/quantize_step.h"

#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/glob.h"
#include "core/interrupt.h"
#include "kernels/threading.h"
#include "quant/linear_hessians.h"
#include "quant/static_calibration_step.h"
#include "quant/step_registry.h"

namespace moeslim::quant {
namespace {

using io::yaml::index_path;
using io::yaml::MapReader;

// Router names probed when checking that a group leaves the router float: every layer index a Qwen3-MoE model
// has (Qwen3-235B has 94 layers), so a layer-specific glob is caught too.
constexpr int kProbeLayers = 128;
// W4A16's default group: the size llm-compressor's W4A16 preset and vLLM's Marlin kernels are built around.
constexpr std::int64_t kDefaultW4A16GroupSize = 128;
constexpr const char* kSchemes = "w8a8, w8a8_dynamic, w4a8_dynamic, w4a16";

QuantScheme parse_scheme(const StepInput& in, const YAML::Node& node, const std::string& path) {
  const io::yaml::Source& src = in.src;
  // "float" gets its own message: it is the natural thing to write, and the answer (leave the linear out) is not
  // obvious from the list of allowed schemes.
  if (node.IsScalar() && (node.Scalar() == "float" || node.Scalar() == "FLOAT")) {
    src.fail(path,
             "'float' is not a quantization scheme: linears that no group claims stay float, so leave them out "
             "of every include (or exclude them); allowed: " + std::string(kSchemes),
             node);
  }
  const std::string v = src.as_choice(node, path, {"w8a8", "w8a8_dynamic", "w4a8_dynamic", "w4a16"});
  if (v == "w8a8") {
    if (in.defaults.v1) {
      src.fail(path,
               "w8a8 (static activations) needs the v0 static calibration: use apiversion modelslim_v0, or "
               "w8a8_dynamic / w4a8_dynamic in a modelslim_v1 recipe",
               node);
    }
    return QuantScheme::kW8A8;
  }
  if (v == "w4a8_dynamic") {
    if (!in.defaults.v1) {
      src.fail(path,
               "w4a8_dynamic is written only by the v1 pipeline: use apiversion modelslim_v1, or w8a8 / "
               "w8a8_dynamic in a modelslim_v0 recipe",
               node);
    }
    return QuantScheme::kW4A8Dynamic;
  }
  if (v == "w4a16") {
    if (!in.defaults.v1) {
      src.fail(path, "w4a16 is written only by the v1 pipeline: use apiversion modelslim_v1", node);
    }
    return QuantScheme::kW4A16;
  }
  return QuantScheme::kW8A8Dynamic;
}

// `group_size` (input columns per scale, 0 for one per output channel; 128 by default) and `symmetric` (true by
// default): w4a16's grid. The other schemes' layouts are per channel and symmetric, so the keys are refused there.
WeightGrid parse_grid(const io::yaml::Source& src, const MapReader& m, QuantScheme scheme) {
  WeightGrid grid;
  if (scheme != QuantScheme::kW4A16) {
    for (const char* key : {"group_size", "symmetric"}) {
      if (m.has(key)) {
        src.fail(m.path(key),
                 fmt::format("{} applies only to scheme w4a16 ({} is per channel and symmetric)", key,
                             quant_scheme_name(scheme)),
                 m.get(key));
      }
    }
    return grid;
  }
  grid.group_size = kDefaultW4A16GroupSize;
  if (m.has("group_size")) {
    grid.group_size = src.as_int(m.get("group_size"), m.path("group_size"), 0, 1 << 20);
    if (grid.group_size % 8 != 0) {
      src.fail(m.path("group_size"),
               "a group size must be 0 (one scale per output channel) or a multiple of 8 (eight int4 codes fill "
               "one packed word); 32, 64 and 128 are what vLLM's kernels take",
               m.get("group_size"));
    }
  }
  if (m.has("symmetric")) {
    grid.symmetric = src.as_choice(m.get("symmetric"), m.path("symmetric"), {"true", "false"}) == "true";
  }
  return grid;
}

std::vector<std::string> parse_globs(const io::yaml::Source& src, const YAML::Node& node, const std::string& path,
                                     bool non_empty) {
  std::vector<std::string> globs = src.as_string_list(node, path, non_empty);
  for (std::size_t i = 0; i < globs.size(); ++i) {
    try {
      glob_match(globs[i], "");
    } catch (const Error& e) {
      src.fail(index_path(path, i), e.detail(), node[i]);
    }
  }
  return globs;
}

// The group keys every group has, plus every weight method's own keys (a key of a method the group does not
// use is reported with the method it belongs to).
std::vector<std::string> group_keys() {
  std::vector<std::string> keys = {"include", "exclude", "scheme", "group_size", "symmetric", "weight"};
  for (const WeightMethodEntry& m : weight_method_registry()) keys.insert(keys.end(), m.keys.begin(), m.keys.end());
  return keys;
}

const WeightMethodEntry& find_method(const StepInput& in, const MapReader& m) {
  const auto& registry = weight_method_registry();
  std::string name = "minmax";
  std::vector<std::string> names;
  for (const WeightMethodEntry& e : registry) names.push_back(e.name);
  if (m.has("weight")) {
    name = in.src.as_string(m.get("weight"), m.path("weight"));
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      in.src.fail(m.path("weight"),
                  fmt::format("'{}' is not allowed here: expected one of {}", name, fmt::join(names, ", ")),
                  m.get("weight"));
    }
  }
  const WeightMethodEntry* chosen = nullptr;
  for (const WeightMethodEntry& e : registry) {
    if (name == e.name) chosen = &e;
  }
  for (const WeightMethodEntry& e : registry) {
    if (&e == chosen) continue;
    for (const std::string& key : e.keys) {
      const bool own = std::find(chosen->keys.begin(), chosen->keys.end(), key) != chosen->keys.end();
      if (m.has(key) && !own) {
        in.src.fail(m.path(key), fmt::format("{} applies only to weight: {}", key, e.name), m.get(key));
      }
    }
  }
  return *chosen;
}

QuantGroup parse_group(const StepInput& in, const YAML::Node& node, const std::string& path) {
  const io::yaml::Source& src = in.src;
  const std::vector<std::string> keys = group_keys();
  const MapReader m(src, node, path, keys);
  QuantGroup g;
  g.include = parse_globs(src, m.require("include"), m.path("include"), /*non_empty=*/true);
  if (m.has("exclude")) g.exclude = parse_globs(src, m.get("exclude"), m.path("exclude"), /*non_empty=*/false);
  g.scheme = parse_scheme(in, m.require("scheme"), m.path("scheme"));
  g.grid = parse_grid(src, m, g.scheme);
  const WeightMethodEntry& method = find_method(in, m);
  g.method = method.parse(StepInput{src, node, path, in.defaults}, m);
  if (!g.method->supports(g.scheme)) {
    src.fail(m.path("scheme"),
             fmt::format("weight method {} cannot produce {}", method.name, quant_scheme_name(g.scheme)),
             m.get("scheme"));
  }
  for (int layer = 0; layer < kProbeLayers; ++layer) {
    const std::string router = model::hf_module_name({layer, model::ModuleRole::kRouter});
    if (g.matches(router)) {
      src.fail(path,
               "this group claims the router '" + router +
                   "', but the router stays float (msModelSlim never quantizes mlp.gate): add \"*.mlp.gate\" to "
                   "the group's exclude",
               node);
    }
  }
  return g;
}

}  // namespace

bool QuantGroup::matches(const std::string& module) const {
  const auto hit = [&](const std::string& g) { return glob_match(g, module); };
  return std::any_of(include.begin(), include.end(), hit) && std::none_of(exclude.begin(), exclude.end(), hit);
}

const QuantGroup* QuantizeStep::group_for(const std::string& hf_module) const {
  // lm_head is always float (msModelSlim rolls back the last linear in v0 and no v1 recipe names it), even when a
  // catch-all "*" group would match it.
  if (hf_module == "lm_head") return nullptr;
  for (const QuantGroup& g : groups_) {
    if (g.matches(hf_module)) return &g;
  }
  return nullptr;
}

const QuantGroup* QuantizeStep::group_for(const model::ModuleId& module) const {
  return group_for(model::hf_module_name(module));
}

QuantScheme QuantizeStep::scheme_for(const model::ModuleId& module) const {
  const QuantGroup* g = group_for(module);
  return g == nullptr ? QuantScheme::kFloat : g->scheme;
}

nlohmann::ordered_json QuantizeStep::settings() const {
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const QuantGroup& g : groups_) {
    nlohmann::ordered_json j = {{"include", g.include}, {"exclude", g.exclude}, {"scheme", quant_scheme_name(g.scheme)}};
    if (g.scheme == QuantScheme::kW4A16) {
      j["group_size"] = g.grid.group_size;
      j["symmetric"] = g.grid.symmetric;
    }
    j["weight"] = g.method->settings();
    groups.push_back(j);
  }
  return {{"groups", groups}};
}

bool QuantizeStep::observes() const {
  return std::any_of(groups_.begin(), groups_.end(), [](const QuantGroup& g) { return g.method->needs_input_hessian(); });
}

void QuantizeStep::request(const LayerContext& c, ObservationRequest& r) const {
  for (const model::ModuleId& m : model::layer_linears(c.config, c.layer)) {
    if (m.is_expert()) continue;  // an expert's Hessians come from its rows of the quantized pass
    const QuantGroup* g = group_for(m);
    if (g != nullptr && g->method->needs_input_hessian()) r.input_rows.insert(input_owner(m));
  }
}

void QuantizeStep::apply(LayerContext& c) const {
  std::vector<model::ModuleId> modules;
  for (const model::ModuleId& m : model::layer_linears(c.config, c.layer)) {
    if (!m.is_expert()) modules.push_back(m);
  }
  // The Hessians a data-fitted method reads, from the float pass's input rows.
  const std::set<model::ModuleId> fitted = modules_needing_hessians(modules);
  const LinearHessians hessians = fitted.empty() ? LinearHessians() : layer_input_hessians(c, fitted);
  // The linears are independent: each is quantized as a task on one thread, its kernels serial. The layer's
  // tensors are only read here; the results enter c.linears afterwards, in the linears' order. A method gives
  // the same bits on one thread as on many (kernels/threading.h), so the output does not depend on the count.
  std::vector<QuantizedWeight> quantized(modules.size());
  kernels::run_tasks(static_cast<std::int64_t>(modules.size()), true, [&](std::int64_t i, int /*worker*/) {
    throw_if_interrupted();
    const model::ModuleId& module = modules[static_cast<std::size_t>(i)];
    const auto h = hessians.find(module);
    quantized[static_cast<std::size_t>(i)] =
        quantize_linear(c, module, c.weight_to_quantize(module), h == hessians.end() ? nullptr : h->second.get());
  });
  keep(c, modules, quantized);
}

void QuantizeStep::apply_to_experts(LayerContext& c, model::ExpertRange group) const {
  // One task per expert (a layer has hundreds): its Hessians, when a data-fitted method claims one of its
  // linears, come from its own rows of the pass, and its three linears are quantized after them. Each weight is
  // made once in its current basis (weight_to_quantize: a copy with the smoothing, and a rotation when the
  // experts are rotated as they are read), serves both and goes as soon as it is quantized.
  const std::vector<model::ModuleId> modules = model::expert_linears(c.layer, group.first, group.last);
  const std::int64_t per_expert = static_cast<std::int64_t>(modules.size()) / (group.last - group.first);
  std::vector<QuantizedWeight> quantized(modules.size());
  kernels::run_tasks(group.last - group.first, true, [&](std::int64_t task, int /*worker*/) {
    throw_if_interrupted();
    const std::vector<model::ModuleId> own(modules.begin() + task * per_expert,
                                           modules.begin() + (task + 1) * per_expert);
    std::vector<Tensor> weights(own.size());  // gate, up, down_proj (expert_linears' order), made when first needed
    const std::set<model::ModuleId> fitted = modules_needing_hessians(own);
    LinearHessians hessians;
    if (!fitted.empty()) {
      weights[0] = c.weight_to_quantize(own[0]);
      weights[1] = c.weight_to_quantize(own[1]);
      hessians = expert_input_hessians(c, group.first + task, fitted, weights[0], weights[1]);
    }
    for (std::size_t j = 0; j < own.size(); ++j) {
      if (weights[j].empty()) weights[j] = c.weight_to_quantize(own[j]);
      const auto h = hessians.find(own[j]);
      quantized[static_cast<std::size_t>(task * per_expert) + j] =
          quantize_linear(c, own[j], weights[j], h == hessians.end() ? nullptr : h->second.get());
      weights[j] = Tensor();  // quantized: its float copy is not read again
    }
  });
  keep(c, modules, quantized);
}

std::set<model::ModuleId> QuantizeStep::modules_needing_hessians(const std::vector<model::ModuleId>& modules) const {
  std::set<model::ModuleId> out;
  for (const model::ModuleId& m : modules) {
    const QuantGroup* g = group_for(m);
    if (g != nullptr && g->method->needs_input_hessian()) out.insert(m);
  }
  return out;
}

QuantizedWeight QuantizeStep::quantize_linear(const LayerContext& c, const model::ModuleId& module, const Tensor& weight,
                                              const InputHessian* hessian) const {
  const QuantGroup* group = group_for(module);  // never the router: the parser refuses that
  if (group == nullptr) {
    // Left float, but with the edits the smoothing steps planned for it (an expert's moe-input and up-down
    // scales): its input was rescaled, so the weight must follow even unquantized.
    return {float_linear(module, weight, c.bias(module)), {}};
  }
  const Tensor bias = c.bias(module);
  QuantizedWeight q =
      group->method->quantize({module, group->scheme, weight, bias, c.settings.float_dtype, group->grid, hessian,
                               module.is_expert() ? c.settings.min_expert_tokens : 0});
  if (c.release_mapped) c.release_mapped(model::hf_weight_name(module));
  return q;
}

void QuantizeStep::keep(LayerContext& c, const std::vector<model::ModuleId>& modules,
                        std::vector<QuantizedWeight>& quantized) {
  for (std::size_t i = 0; i < modules.size(); ++i) {
    if (!quantized[i].fallback.empty()) {
      c.weight_fallbacks.push_back({model::hf_module_name(modules[i]), std::move(quantized[i].fallback)});
    }
    c.linears[modules[i]] = std::move(quantized[i].linear);
  }
}

QuantizedLinear float_linear(const model::ModuleId& module, const Tensor& weight, const Tensor& bias) {
  QuantizedLinear linear;
  linear.module = module;
  linear.scheme = QuantScheme::kFloat;
  linear.weight = weight;
  linear.bias = bias;
  return linear;
}

// The quantize entry: its groups, then the static activation calibration its static groups need.
StepList parse_quantize_step(const StepInput& in) {
  const io::yaml::Source& src = in.src;
  if (!in.node.IsSequence()) {
    src.fail(in.path,
             "expected a list of groups (include, exclude, scheme, group_size, symmetric, weight and its keys), got " +
                 io::yaml::describe(in.node),
             in.node);
  }
  if (in.node.size() == 0) {
    src.fail(in.path, "the quantize list is empty: give at least one group with include and scheme", in.node);
  }
  std::vector<QuantGroup> groups;
  for (std::size_t i = 0; i < in.node.size(); ++i) groups.push_back(parse_group(in, in.node[i], index_path(in.path, i)));
  auto step = std::make_shared<QuantizeStep>(std::move(groups));
  // int4 is written with a scale_bias whose form exists only for gate/up/down_proj (docs/msmodelslim-format.md
  // §5), so the group that wins an attention linear must not be w4a8_dynamic.
  for (int layer = 0; layer < kProbeLayers; ++layer) {
    for (const model::ModuleRole role : {model::ModuleRole::kQProj, model::ModuleRole::kKProj,
                                         model::ModuleRole::kVProj, model::ModuleRole::kOProj}) {
      const std::string module = model::hf_module_name({layer, role});
      const QuantGroup* g = step->group_for(module);
      if (g != nullptr && g->scheme == QuantScheme::kW4A8Dynamic) {
        const auto at = static_cast<std::size_t>(g - step->groups().data());
        src.fail(index_path(in.path, at),
                 "this group gives '" + module + "' int4 weights (w4a8_dynamic), which msModelSlim's layout has "
                 "only for the MLP projections (gate/up/down_proj): claim attention with an earlier "
                 "w8a8_dynamic group or exclude it",
                 in.node[at]);
      }
    }
  }
  StepList steps = {step};
  const bool has_static = std::any_of(step->groups().begin(), step->groups().end(),
                                      [](const QuantGroup& g) { return g.scheme == QuantScheme::kW8A8; });
  if (has_static) steps.push_back(std::make_shared<StaticCalibrationStep>());
  return steps;
}

}  // namespace moeslim::quant
