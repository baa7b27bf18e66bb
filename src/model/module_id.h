// The identity of one module of a Qwen3-MoE model: {layer, role, expert} for a decoder layer's modules, and
// ModuleId::final_norm() for model.norm. Quantization code keys its
// statistics, steps and results by this, never by a string; a name is made only where a file format needs
// one (the input checkpoint's Hugging Face names here, an output format's names in its own folder).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moeslim::model {

struct ModelConfig;

enum class ModuleRole : std::uint8_t {
  kQProj,
  kKProj,
  kVProj,
  kOProj,
  kQNorm,
  kKNorm,
  kInputNorm,
  kPostAttentionNorm,
  kRouter,    // mlp.gate of a MoE layer
  kGateProj,  // an expert's (expert >= 0) or the dense MLP's (expert < 0)
  kUpProj,
  kDownProj,
  kFinalNorm,  // model.norm, after the last decoder layer (layer -1)
};

struct ModuleId {
  std::int64_t layer = 0;
  ModuleRole role = ModuleRole::kQProj;
  std::int64_t expert = -1;  // >= 0 for an expert's gate/up/down_proj, else -1

  static ModuleId expert_proj(std::int64_t layer, ModuleRole role, std::int64_t expert) {
    return ModuleId{layer, role, expert};
  }
  static ModuleId final_norm() { return ModuleId{-1, ModuleRole::kFinalNorm, -1}; }

  bool is_linear() const;
  bool is_norm() const { return !is_linear(); }
  bool is_expert() const { return expert >= 0; }
  bool is_attention() const;  // q/k/v/o_proj

  auto operator<=>(const ModuleId&) const = default;
};

// The Hugging Face module path: "model.layers.3.self_attn.q_proj", "model.layers.3.mlp.experts.7.up_proj",
// "model.layers.3.mlp.gate", "model.layers.3.post_attention_layernorm", and "model.norm" for final_norm().
std::string hf_module_name(const ModuleId& id);
// hf_module_name(id) + ".weight" / ".bias": the checkpoint's tensor names.
std::string hf_weight_name(const ModuleId& id);
std::string hf_bias_name(const ModuleId& id);
// The inverse of hf_module_name; nullopt for anything that is neither a decoder-layer module nor model.norm.
std::optional<ModuleId> parse_hf_module_name(std::string_view name);

// A layer's linears in Hugging Face's module order: q, k, v, o, then the router and every expert's gate, up,
// down (MoE layers) or the dense MLP's gate, up, down.
std::vector<ModuleId> layer_linears(const ModelConfig& config, std::int64_t layer);
// A layer's norms in module order: q_norm, k_norm, input_layernorm, post_attention_layernorm.
// The gate, up and down_proj of experts [first, last) of a MoE layer, in layer_linears' order.
std::vector<ModuleId> expert_linears(std::int64_t layer, std::int64_t first, std::int64_t last);
std::vector<ModuleId> layer_norms(std::int64_t layer);

}  // namespace moeslim::model
