#include "formats/compressed_tensors/quantization_config.h"

#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "model/module_id.h"

namespace moeslim::formats::compressed_tensors {
namespace {

// vLLM matches a target against q/k/v/o_proj and against its fused qkv_proj (docs/compressed-tensors.md §1.5).
constexpr const char* kAttentionTarget = "re:.*self_attn\\.(q|k|v|o|qkv)_proj$";

[[noreturn]] void unsupported(const std::string& module, const std::string& why) {
  throw Error(ErrorCode::kUnsupported, "the compressed-tensors format cannot hold this linear: " + why, {}, module);
}

nlohmann::ordered_json weight_args(const CtScheme& s) {
  return {{"num_bits", s.weight_bits},
          {"type", "int"},
          {"symmetric", s.symmetric},
          {"group_size", s.group_size > 0 ? nlohmann::ordered_json(s.group_size) : nlohmann::ordered_json(nullptr)},
          {"strategy", s.group_size > 0 ? "group" : "channel"},
          {"block_structure", nullptr},
          {"dynamic", false},
          {"actorder", nullptr},  // codes are written in column order; vLLM's Marlin MoE misreads a static actorder
          {"observer", "minmax"},
          {"observer_kwargs", nlohmann::ordered_json::object()}};
}

nlohmann::ordered_json token_activation_args() {
  return {{"num_bits", 8},
          {"type", "int"},
          {"symmetric", true},
          {"group_size", nullptr},
          {"strategy", "token"},
          {"block_structure", nullptr},
          {"dynamic", true},
          {"actorder", nullptr},
          {"observer", nullptr},
          {"observer_kwargs", nlohmann::ordered_json::object()}};
}

// The one scheme of a class of linears (attention; experts and dense MLPs), or nullopt when all are float.
struct ClassScheme {
  std::optional<CtScheme> scheme;
  std::string first_module;  // the module it was first seen on, for the error naming a second one
};

void add_to(ClassScheme& c, const CtScheme& s, const std::string& module, const char* what) {
  if (!c.scheme) {
    c.scheme = s;
    c.first_module = module;
    return;
  }
  if (*c.scheme != s) {
    unsupported(module, fmt::format("every quantized {} must share one scheme in this format ({} differs from {})",
                                    what, module, c.first_module));
  }
}

}  // namespace

CtScheme ct_scheme(quant::QuantScheme scheme, const std::string& module) {
  switch (scheme) {
    case quant::QuantScheme::kW8A8Dynamic:
      return {8, 0, true, true, "int-quantized"};
    case quant::QuantScheme::kW4A8Dynamic:
      return {4, 0, true, true, "int-quantized"};
    default:
      unsupported(module, fmt::format("scheme {} has no compressed-tensors form here; use w8a8_dynamic or "
                                      "w4a8_dynamic",
                                      quant::quant_scheme_name(scheme)));
  }
}

nlohmann::ordered_json quantization_config(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                                           const std::string& version) {
  // Every linear of the layers written, in their order, then lm_head (always float).
  ClassScheme attention, mlp;
  nlohmann::ordered_json ignore = nlohmann::ordered_json::array();
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (const model::ModuleId& id : model::layer_linears(config, l)) {
      const std::string module = model::hf_module_name(id);
      const LinearPlan plan = plan_of(module);
      if (plan.scheme == quant::QuantScheme::kFloat) {
        ignore.push_back(module);
        continue;
      }
      if (plan.has_bias) {
        unsupported(module, "it carries a float bias (m4's norm-linear shift folds one into q/k/v_proj), which "
                            "vLLM's Qwen3-MoE attention does not load; smooth with flex_smooth instead");
      }
      const CtScheme s = ct_scheme(plan.scheme, module);
      const bool is_attention = id.role == model::ModuleRole::kQProj || id.role == model::ModuleRole::kKProj ||
                                id.role == model::ModuleRole::kVProj || id.role == model::ModuleRole::kOProj;
      add_to(is_attention ? attention : mlp, s, module, is_attention ? "attention linear" : "expert or MLP linear");
    }
  }
  ignore.push_back("lm_head");

  // "Linear" to the MLP's scheme (the fused MoE lookups), or to the attention's when the experts stay float.
  std::vector<std::pair<nlohmann::ordered_json, CtScheme>> groups;
  if (mlp.scheme) groups.push_back({{"Linear"}, *mlp.scheme});
  if (attention.scheme) {
    if (!mlp.scheme) {
      groups.push_back({{"Linear"}, *attention.scheme});
    } else if (*attention.scheme != *mlp.scheme) {
      groups.push_back({{kAttentionTarget}, *attention.scheme});
    }
  }
  if (groups.empty()) {
    throw Error(ErrorCode::kUnsupported, "a compressed-tensors checkpoint needs at least one quantized linear");
  }
  bool mixed = false;
  for (const auto& g : groups) mixed = mixed || g.second.format != groups.front().second.format;

  nlohmann::ordered_json config_groups = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const CtScheme& s = groups[i].second;
    nlohmann::ordered_json g = nlohmann::ordered_json::object();
    if (mixed) g["format"] = s.format;
    g["input_activations"] = s.int8_token_activations ? token_activation_args() : nlohmann::ordered_json(nullptr);
    g["output_activations"] = nullptr;
    g["targets"] = groups[i].first;
    g["weights"] = weight_args(s);
    config_groups["group_" + std::to_string(i)] = std::move(g);
  }
  return {{"config_groups", std::move(config_groups)},
          {"format", mixed ? "mixed-precision" : groups.front().second.format},
          {"global_compression_ratio", nullptr},
          {"ignore", std::move(ignore)},
          {"kv_cache_scheme", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"},
          {"sparsity_config", nlohmann::ordered_json::object()},
          {"transform_config", nlohmann::ordered_json::object()},
          {"version", version}};
}

}  // namespace moeslim::formats::compressed_tensors
