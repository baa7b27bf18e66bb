// msModelSlim's `--rot` on a Qwen3-MoE checkpoint (docs/msmodelslim-algorithms.md §5), one tensor
// group at a time so it streams with the layer pipeline:
//   * rotate_layer: fold the layer's RMSNorm weights into the linears that read them, set those norms to 1,
//     then rotate the residual stream by R1 and each V head by R2 (§5.1 step 1 and 4);
//   * rotate_embedding: E·R1 (step 3);
//   * fold_and_rotate_lm_head: fold model.norm into lm_head, then ·R1 (steps 1 and 5); the caller writes
//     unit_norm_weight(model.norm) as the new final norm.
// The rotated model computes the same function (§5.3): every residual-stream vector is multiplied by R1, the V
// heads by R2, and both are undone inside the next linear; q, k, the router logits and the logits are
// unchanged up to the bf16 roundings of the weights.
//
// Weights may be read-only views (a mapped checkpoint): every transformed tensor is a new owned tensor of the
// input's dtype, and each step is computed in float32 from the current weight and rounded back to that dtype,
// in §5.1's order (fold; ·R1; R2ᵀ·; ·R2; R1ᵀ·), e.g. v_proj is rounded three times.
//
// The matrices are in hadamard.h, the tensor products in weight_rotation.h.
//
// Order in a pipeline: rotation first, then anti-outlier smoothing (m4 gives the norms a bias, which the
// rotation does not handle; rotate_layer rejects biases).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "quant/hadamard.h"
#include "quant/weight_rotation.h"

namespace moeslim::quant {

// The two rotations of one model.
struct Rotation {
  std::int64_t hidden_size = 0;
  std::int64_t head_dim = 0;
  BlockRotation r1;  // hidden_size: 32-blocks of Hb(s1), channels 0–63 identity
  BlockRotation r2;  // one head_dim block B·P·B (applied per attention head)

  // kUnsupported when hidden_size or head_dim is outside what make_r1 / make_r2 accept.
  static Rotation for_sizes(std::int64_t hidden_size, std::int64_t head_dim);
  // Also kUnsupported for tied embeddings: the embedding (·R1) and lm_head (norm folded, then ·R1) need
  // different tensors.
  static Rotation for_config(const model::ModelConfig& config);
};

// Folds and rotates decoder layer `layer` in place in `tensors` (read_layer_tensors' names and shapes); the
// map's entries are replaced by owned tensors of the same dtype. input_layernorm and post_attention_layernorm
// become ones; q_norm and k_norm are untouched. Dense-MLP layers (mlp_only_layers) get the same treatment as
// the experts: gate_proj/up_proj fold + ·R1, down_proj R1ᵀ·.
// kInvalidArgument on missing tensors, a size mismatch with `rotation`, or any ".bias" entry.
void rotate_layer(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors& tensors,
                  const Rotation& rotation);

// rotate_layer for all but a MoE layer's experts, which keep their entries: rotate_expert_weight gives each
// expert weight its rotation when it is read (the pipeline never holds a layer's experts at once). Keep the
// layer's post_attention_layernorm weight from before the call for it.
void rotate_layer_except_experts(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors& tensors,
                                 const Rotation& rotation);
// An expert's weight as rotate_layer leaves it: gate/up_proj with `post_norm` (the layer's
// post_attention_layernorm weight before rotation) folded in, then ·R1; down_proj R1ᵀ·. A new owned tensor.
Tensor rotate_expert_weight(const model::ModuleId& module, const Tensor& weight, const Tensor& post_norm,
                            const Rotation& rotation);

// dtype(E·R1) for the embedding [vocab, hidden].
Tensor rotate_embedding(const Tensor& embedding, const Rotation& rotation);

// dtype(dtype(W ⊙ γ)·R1) for lm_head [vocab, hidden] and the final norm weight γ = model.norm.weight.
Tensor fold_and_rotate_lm_head(const Tensor& lm_head, const Tensor& final_norm_weight, const Rotation& rotation);

// A norm weight after its fold: ones, same dtype and shape.
Tensor unit_norm_weight(const Tensor& norm_weight);

}  // namespace moeslim::quant
