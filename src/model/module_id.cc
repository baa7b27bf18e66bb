#include "model/module_id.h"

#include <array>
#include <charconv>

#include "model/config.h"

namespace moeslim::model {
namespace {

// The part of the name after "model.layers.N." (after "mlp.experts.E." for an expert's projections), for the
// decoder-layer roles (every role but kFinalNorm, which is last).
constexpr std::array<std::string_view, 12> kRoleSuffix = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "self_attn.q_norm", "self_attn.k_norm", "input_layernorm",  "post_attention_layernorm",
    "mlp.gate",         "gate_proj",        "up_proj",          "down_proj",
};
static_assert(kRoleSuffix.size() == static_cast<std::size_t>(ModuleRole::kFinalNorm));
constexpr std::string_view kFinalNormName = "model.norm";

bool is_mlp_proj(ModuleRole r) {
  return r == ModuleRole::kGateProj || r == ModuleRole::kUpProj || r == ModuleRole::kDownProj;
}

// Reads a decimal index at the front of `s` and the '.' after it; nullopt when there is none.
std::optional<std::int64_t> take_index(std::string_view& s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data() || end == s.data() + s.size() || *end != '.' || v < 0) return std::nullopt;
  s.remove_prefix(static_cast<std::size_t>(end - s.data()) + 1);
  return v;
}

bool take_prefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

}  // namespace

bool ModuleId::is_linear() const {
  switch (role) {
    case ModuleRole::kQNorm:
    case ModuleRole::kKNorm:
    case ModuleRole::kInputNorm:
    case ModuleRole::kPostAttentionNorm:
    case ModuleRole::kFinalNorm:
      return false;
    default:
      return true;
  }
}

bool ModuleId::is_attention() const {
  return role == ModuleRole::kQProj || role == ModuleRole::kKProj || role == ModuleRole::kVProj ||
         role == ModuleRole::kOProj;
}

std::string hf_module_name(const ModuleId& id) {
  if (id.role == ModuleRole::kFinalNorm) return std::string(kFinalNormName);
  std::string name = layer_prefix(id.layer);
  const std::string_view suffix = kRoleSuffix[static_cast<std::size_t>(id.role)];
  if (is_mlp_proj(id.role)) {
    name += id.expert >= 0 ? "mlp.experts." + std::to_string(id.expert) + "." : std::string("mlp.");
  }
  name += suffix;
  return name;
}

std::string hf_weight_name(const ModuleId& id) { return hf_module_name(id) + ".weight"; }
std::string hf_bias_name(const ModuleId& id) { return hf_module_name(id) + ".bias"; }

std::optional<ModuleId> parse_hf_module_name(std::string_view s) {
  if (s == kFinalNormName) return ModuleId::final_norm();
  if (!take_prefix(s, "model.layers.")) return std::nullopt;
  const std::optional<std::int64_t> layer = take_index(s);
  if (!layer) return std::nullopt;
  std::int64_t expert = -1;
  if (take_prefix(s, "mlp.experts.")) {
    const std::optional<std::int64_t> e = take_index(s);
    if (!e) return std::nullopt;
    expert = *e;
  } else if (s.starts_with("mlp.") && s != "mlp.gate") {
    s.remove_prefix(4);  // the dense MLP's gate/up/down_proj
  }
  for (std::size_t r = 0; r < kRoleSuffix.size(); ++r) {
    const auto role = static_cast<ModuleRole>(r);
    if (s != kRoleSuffix[r]) continue;
    if (expert >= 0 && !is_mlp_proj(role)) return std::nullopt;
    return ModuleId{*layer, role, expert};
  }
  return std::nullopt;
}

std::vector<ModuleId> layer_linears(const ModelConfig& config, std::int64_t layer) {
  std::vector<ModuleId> out = {{layer, ModuleRole::kQProj},
                               {layer, ModuleRole::kKProj},
                               {layer, ModuleRole::kVProj},
                               {layer, ModuleRole::kOProj}};
  if (config.is_moe_layer(layer)) {
    out.push_back({layer, ModuleRole::kRouter});
    const std::vector<ModuleId> experts = expert_linears(layer, 0, config.num_experts);
    out.insert(out.end(), experts.begin(), experts.end());
  } else {
    for (const ModuleRole r : {ModuleRole::kGateProj, ModuleRole::kUpProj, ModuleRole::kDownProj}) {
      out.push_back({layer, r});
    }
  }
  return out;
}

std::vector<ModuleId> expert_linears(std::int64_t layer, std::int64_t first, std::int64_t last) {
  std::vector<ModuleId> out;
  for (std::int64_t e = first; e < last; ++e) {
    for (const ModuleRole r : {ModuleRole::kGateProj, ModuleRole::kUpProj, ModuleRole::kDownProj}) {
      out.push_back({layer, r, e});
    }
  }
  return out;
}

std::vector<ModuleId> layer_norms(std::int64_t layer) {
  return {{layer, ModuleRole::kQNorm},
          {layer, ModuleRole::kKNorm},
          {layer, ModuleRole::kInputNorm},
          {layer, ModuleRole::kPostAttentionNorm}};
}

}  // namespace moeslim::model
