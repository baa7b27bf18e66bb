#include "quant/rotation.h"

#include <string>
#include <vector>

#include "core/error.h"

namespace moeslim::quant {
namespace {

Tensor& tensor_at(model::LayerTensors& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(ErrorCode::kInvalidArgument, "rotation: layer tensor missing", "", name);
  return it->second;
}

// Every tensor the layer must have, with its shape, and no biases (Qwen3-MoE has none; m4's norm and linear
// biases would come after the rotation and are not rotated here).
void check_layer(const model::ModelConfig& config, std::int64_t layer, const model::LayerTensors& tensors) {
  for (const model::ExpectedTensor& e : model::expected_layer_tensors(config, layer)) {
    auto it = tensors.find(e.name);
    if (it == tensors.end()) throw Error(ErrorCode::kInvalidArgument, "rotation: layer tensor missing", "", e.name);
    if (it->second.shape() != e.shape || !is_float_dtype(it->second.dtype())) {
      throw Error(ErrorCode::kInvalidArgument,
                  "rotation: expected a float tensor of shape " + shape_to_string(e.shape) + ", got " +
                      std::string(dtype_name(it->second.dtype())) + " " + shape_to_string(it->second.shape()),
                  "", e.name);
    }
  }
  const std::string prefix = model::layer_prefix(layer);
  for (const auto& [name, t] : tensors) {
    if (name.starts_with(prefix) && name.ends_with(".bias")) {
      throw Error(ErrorCode::kInvalidArgument,
                  "rotation does not handle biases: rotate before anti-outlier smoothing", "", name);
    }
  }
}

}  // namespace

Rotation Rotation::for_sizes(std::int64_t hidden_size, std::int64_t head_dim) {
  return Rotation{hidden_size, head_dim, make_r1(hidden_size), make_r2(head_dim)};
}

Rotation Rotation::for_config(const model::ModelConfig& config) {
  if (config.tie_word_embeddings) {
    throw Error(ErrorCode::kUnsupported,
                "--rot needs separate embedding and lm_head tensors (the head gets model.norm folded in)", "",
                "tie_word_embeddings");
  }
  return for_sizes(config.hidden_size, config.head_dim);
}

void rotate_layer(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors& tensors,
                  const Rotation& rotation) {
  const Tensor post_norm = tensor_at(tensors, model::layer_prefix(layer) + "post_attention_layernorm.weight");
  rotate_layer_except_experts(config, layer, tensors, rotation);
  if (!config.is_moe_layer(layer)) return;
  for (const model::ModuleId& module : model::expert_linears(layer, 0, config.num_experts)) {
    Tensor& w = tensor_at(tensors, model::hf_weight_name(module));
    w = rotate_expert_weight(module, w, post_norm, rotation);
  }
}

void rotate_layer_except_experts(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors& tensors,
                                 const Rotation& rotation) {
  if (config.hidden_size != rotation.hidden_size || config.head_dim != rotation.head_dim) {
    throw Error(ErrorCode::kInvalidArgument,
                "rotation built for hidden " + std::to_string(rotation.hidden_size) + ", head_dim " +
                    std::to_string(rotation.head_dim) + " applied to a layer with hidden " +
                    std::to_string(config.hidden_size) + ", head_dim " + std::to_string(config.head_dim));
  }
  check_layer(config, layer, tensors);
  const std::string p = model::layer_prefix(layer);
  // Copies share the bytes; they keep the norms' values while their map entries are replaced by ones.
  const Tensor input_norm = tensor_at(tensors, p + "input_layernorm.weight");
  const Tensor post_norm = tensor_at(tensors, p + "post_attention_layernorm.weight");

  // Attention. q and k outputs are unchanged (x·R1·R1ᵀ = x), so q_norm, k_norm and RoPE need nothing.
  for (const char* m : {"q_proj", "k_proj"}) {
    Tensor& w = tensor_at(tensors, p + "self_attn." + m + ".weight");
    w = right_multiply(w, rotation.r1, input_norm);
  }
  Tensor& v = tensor_at(tensors, p + "self_attn.v_proj.weight");
  v = left_multiply_transposed(rotation.r2, right_multiply(v, rotation.r1, input_norm));  // each kv head ·R2
  Tensor& o = tensor_at(tensors, p + "self_attn.o_proj.weight");
  o = left_multiply_transposed(rotation.r1, right_multiply(o, rotation.r2));  // undo R2 per q head, then R1ᵀ

  // MLP: everything reading the post-attention norm gets it folded and ·R1; what writes the residual, R1ᵀ·.
  // A MoE layer's experts are left to rotate_expert_weight.
  if (config.is_moe_layer(layer)) {
    Tensor& router = tensor_at(tensors, p + "mlp.gate.weight");
    router = right_multiply(router, rotation.r1, post_norm);
  } else {
    for (const char* m : {"gate_proj", "up_proj"}) {
      Tensor& w = tensor_at(tensors, p + "mlp." + m + ".weight");
      w = right_multiply(w, rotation.r1, post_norm);
    }
    Tensor& down = tensor_at(tensors, p + "mlp.down_proj.weight");
    down = left_multiply_transposed(rotation.r1, down);
  }
  tensor_at(tensors, p + "input_layernorm.weight") = unit_norm_weight(input_norm);
  tensor_at(tensors, p + "post_attention_layernorm.weight") = unit_norm_weight(post_norm);
}

Tensor rotate_expert_weight(const model::ModuleId& module, const Tensor& weight, const Tensor& post_norm,
                            const Rotation& rotation) {
  switch (module.role) {
    case model::ModuleRole::kGateProj:
    case model::ModuleRole::kUpProj:
      return right_multiply(weight, rotation.r1, post_norm);
    case model::ModuleRole::kDownProj:
      return left_multiply_transposed(rotation.r1, weight);
    default:
      throw Error(ErrorCode::kInternal, "not an expert projection", "", model::hf_module_name(module));
  }
}

Tensor rotate_embedding(const Tensor& embedding, const Rotation& rotation) {
  if (embedding.rank() != 2 || embedding.dim(1) != rotation.hidden_size) {
    throw Error(ErrorCode::kInvalidArgument, "embedding " + shape_to_string(embedding.shape()) +
                                                 " does not have hidden size " +
                                                 std::to_string(rotation.hidden_size));
  }
  return right_multiply(embedding, rotation.r1);
}

Tensor fold_and_rotate_lm_head(const Tensor& lm_head, const Tensor& final_norm_weight, const Rotation& rotation) {
  if (lm_head.rank() != 2 || lm_head.dim(1) != rotation.hidden_size) {
    throw Error(ErrorCode::kInvalidArgument, "lm_head " + shape_to_string(lm_head.shape()) +
                                                 " does not have hidden size " +
                                                 std::to_string(rotation.hidden_size));
  }
  return right_multiply(lm_head, rotation.r1, final_norm_weight);
}

Tensor unit_norm_weight(const Tensor& norm_weight) {
  if (!is_float_dtype(norm_weight.dtype())) {
    throw Error(ErrorCode::kInvalidArgument,
                "norm weight must be a float tensor, got " + std::string(dtype_name(norm_weight.dtype())));
  }
  Tensor ones = Tensor::zeros(norm_weight.dtype(), norm_weight.shape());
  std::byte* base = ones.mutable_bytes();
  for (std::size_t i = 0; i < ones.numel(); ++i) {
    switch (ones.dtype()) {
      case DType::kBF16: reinterpret_cast<std::uint16_t*>(base)[i] = 0x3f80; break;  // 1.0 in bf16
      case DType::kF16: reinterpret_cast<std::uint16_t*>(base)[i] = 0x3c00; break;   // 1.0 in f16
      default: reinterpret_cast<float*>(base)[i] = 1.0f;
    }
  }
  return ones;
}

}  // namespace moeslim::quant
