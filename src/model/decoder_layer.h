// One Qwen3-MoE decoder layer, executable: pre-norm attention (q/k RMSNorm per head before rotate-half RoPE,
// GQA, causal with padding) and a sparse-MoE block (float32 softmax router, top-k, optional renormalisation,
// SwiGLU experts) or a dense SwiGLU MLP. The linears are behind model::Linear, so the same code runs float,
// fake-quantized and integer layers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/forward_scratch.h"
#include "model/linear.h"
#include "model/observer.h"
#include "model/token_layout.h"

namespace moeslim::model {

// RMSNorm with an optional bias added after the weight (m4 smoothing folds a shift into it: "NormBias").
struct RmsNorm {
  Tensor weight;  // F32 [n]
  Tensor bias;    // F32 [n], or empty
  void apply(const float* x, std::int64_t rows, std::int64_t n, double eps, float* out) const;
};

struct AttentionBlock {
  RmsNorm input_norm;
  std::unique_ptr<Linear> q_proj, k_proj, v_proj, o_proj;
  Tensor q_norm, k_norm;  // F32 [head_dim], shared by all heads
};

struct SwiGluMlp {
  std::unique_ptr<Linear> gate_proj, up_proj, down_proj;
};

struct MlpBlock {
  RmsNorm post_norm;
  bool is_moe = true;
  std::unique_ptr<Linear> router;  // mlp.gate: [num_experts, hidden]
  std::vector<SwiGluMlp> experts;  // MoE layers
  SwiGluMlp dense;                 // dense (mlp_only) layers
};

// kInternal unless `hidden` is F32-shaped [layout.rows(), hidden_size]: what every pass over a token set checks
// before it hands the rows to the layer as raw pointers.
void check_hidden_rows(const ModelConfig& config, const Tensor& hidden, const TokenLayout& layout);

class DecoderLayer {
 public:
  std::int64_t index = 0;
  AttentionBlock attn;
  MlpBlock mlp;

  // hidden: F32 [layout.rows(), hidden_size], updated in place. observer may be null. scratch: buffers kept
  // across calls (a pass over many chunks passes one); null uses fresh ones.
  void forward(const ModelConfig& config, Tensor& hidden, const TokenLayout& layout, ForwardObserver* observer,
               ForwardScratch* scratch = nullptr) const;

  // The two halves, for code that needs the residual stream between them (e.g. per-block error reports).
  // hidden: layout.rows() rows of hidden_size floats, updated in place; a pass over a whole token set hands
  // each chunk's rows where they lie, without copying them out and back.
  void forward_attention(const ModelConfig& config, float* hidden, const TokenLayout& layout,
                         ForwardObserver* observer, ForwardScratch& scratch) const;
  void forward_mlp(const ModelConfig& config, float* hidden, const TokenLayout& layout, ForwardObserver* observer,
                   ForwardScratch& scratch) const;
};

}  // namespace moeslim::model
