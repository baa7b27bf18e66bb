// Qwen3-MoE architecture settings from a Hugging Face config.json, with Hugging Face's defaults where a key is
// absent, and clear errors for settings moeslim does not implement (never silently ignored).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace moeslim::model {

struct ModelConfig {
  std::string model_type = "qwen3_moe";
  std::int64_t vocab_size = 151936;
  std::int64_t hidden_size = 2048;
  std::int64_t num_hidden_layers = 24;
  std::int64_t num_attention_heads = 32;
  std::int64_t num_key_value_heads = 4;
  std::int64_t head_dim = 0;  // 0 until resolved: config.json's head_dim, else hidden_size / num_attention_heads
  std::int64_t intermediate_size = 6144;
  std::int64_t moe_intermediate_size = 768;
  std::int64_t num_experts = 128;
  std::int64_t num_experts_per_tok = 8;
  bool norm_topk_prob = false;  // the class default; every released checkpoint says true
  std::int64_t decoder_sparse_step = 1;
  std::vector<std::int64_t> mlp_only_layers;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::int64_t max_position_embeddings = 32768;
  std::string torch_dtype = "bfloat16";

  // Hugging Face's rule: layer l is a sparse-MoE layer iff it is not in mlp_only_layers, there are experts,
  // and (l + 1) is a multiple of decoder_sparse_step. Otherwise it is a dense SwiGLU MLP.
  bool is_moe_layer(std::int64_t layer) const;
  std::int64_t q_width() const { return num_attention_heads * head_dim; }
  std::int64_t kv_width() const { return num_key_value_heads * head_dim; }
  std::int64_t group_size() const { return num_attention_heads / num_key_value_heads; }

  // What a config.json is read as: a float model to quantize, which must not carry a quantization_config, or
  // a quantized output directory, whose quantization_config its format reads.
  enum class Holds { kFloatModel, kQuantizedOutput };

  // Parses and validates; `source` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source, Holds holds = Holds::kFloatModel);
  // Reads dir/config.json; kNotFound naming it when the directory or the file is missing.
  static ModelConfig load(const std::filesystem::path& model_dir, Holds holds = Holds::kFloatModel);

  // `--layer_count N`: keep only the first N decoder layers (N must be 1..num_hidden_layers).
  void limit_layers(std::int64_t layer_count);
};

// A tensor the architecture requires, with the shape the config implies.
struct ExpectedTensor {
  std::string name;
  Shape shape;
};

// Everything a checkpoint of this config must contain, in module order (embedding, layers, norm, lm_head).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);
// The tensors of one decoder layer.
std::vector<ExpectedTensor> expected_layer_tensors(const ModelConfig& config, std::int64_t layer);

std::string layer_prefix(std::int64_t layer);  // "model.layers.3."

}  // namespace moeslim::model
