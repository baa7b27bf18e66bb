#include "formats/compressed_tensors/quantization_config.h"

#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/module_names.h"
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

CtScheme ct_scheme(quant::QuantScheme scheme, const quant::WeightGrid& grid, const std::string& module) {
  switch (scheme) {
    case quant::QuantScheme::kW8A8Dynamic:
      return {8, 0, true, true, "int-quantized"};
    case quant::QuantScheme::kW4A8Dynamic:
      return {4, 0, true, true, "int-quantized"};
    case quant::QuantScheme::kW4A16:
      return {4, grid.group_size, grid.symmetric, false, "pack-quantized"};
    default:
      unsupported(module, fmt::format("scheme {} has no compressed-tensors form here; use w8a8_dynamic, "
                                      "w4a8_dynamic or w4a16",
                                      quant::quant_scheme_name(scheme)));
  }
}

std::vector<CtTensor> ct_linear_tensors(const CtScheme& s, std::int64_t out, std::int64_t in, DType float_dtype,
                                        const std::string& module) {
  if (s.format == "int-quantized") return {{"weight", DType::kI8, {out, in}}, {"weight_scale", float_dtype, {out, 1}}};
  if (in % 8 != 0) {
    unsupported(module, fmt::format("its {} input columns are not a multiple of 8, the int4 codes one packed int32 "
                                    "word holds",
                                    in));
  }
  if (s.group_size > 0 && in % s.group_size != 0) {
    unsupported(module, fmt::format("group_size {} does not divide its {} input columns; pick a divisor", s.group_size,
                                    in));
  }
  const std::int64_t groups = s.group_size > 0 ? in / s.group_size : 1;
  std::vector<CtTensor> t = {{"weight_packed", DType::kI32, {out, in / 8}},
                             {"weight_scale", float_dtype, {out, groups}},
                             {"weight_shape", DType::kI64, {2}}};
  if (!s.symmetric) t.push_back({"weight_zero_point", DType::kI32, {(out + 7) / 8, groups}});
  return t;
}

nlohmann::ordered_json quantization_config(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                                           const std::string& version) {
  // Every linear of the layers written, in their order, then lm_head (always float).
  ClassScheme attention, mlp;
  nlohmann::ordered_json ignore = nlohmann::ordered_json::array();
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    std::map<std::string, Shape> shapes;  // by tensor name
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) shapes[t.name] = t.shape;
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
      const CtScheme s = ct_scheme(plan.scheme, plan.grid, module);
      if (s.format == "pack-quantized" && !s.symmetric && id.is_expert()) {
        unsupported(module, "vLLM's fused-MoE methods load only symmetric int4 experts; set symmetric: true in the "
                            "experts' quantize group");
      }
      const Shape& shape = shapes.at(tensor_name(module, "weight"));
      ct_linear_tensors(s, shape[0], shape[1], DType::kBF16, module);  // refuses what cannot be packed
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
  nlohmann::ordered_json q = {{"config_groups", std::move(config_groups)},
                              {"format", mixed ? "mixed-precision" : groups.front().second.format}};
  // vLLM-Ascend's W4A16 MoE method: the experts' group size (groups.front() holds the MLP's scheme if any).
  if (groups.front().second.format == "pack-quantized" && groups.front().second.group_size > 0) {
    q["group_size"] = groups.front().second.group_size;
  }
  q["global_compression_ratio"] = nullptr;
  q["ignore"] = std::move(ignore);
  q["kv_cache_scheme"] = nullptr;
  q["quant_method"] = "compressed-tensors";
  q["quantization_status"] = "compressed";
  q["sparsity_config"] = nlohmann::ordered_json::object();
  q["transform_config"] = nlohmann::ordered_json::object();
  q["version"] = version;
  return q;
}

}  // namespace moeslim::formats::compressed_tensors
