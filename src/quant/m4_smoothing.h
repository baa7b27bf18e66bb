// Anti-outlier method m4 of msModelSlim on a Qwen3-MoE layer (docs/msmodelslim-algorithms.md §3):
// SmoothQuant-style per-channel scales s = a^α / w^(1−α) moved from activations into weights, with every
// step rounded to the model dtype in the order §3.5/§3.6 give. The two subgraphs of a layer, in this order:
//   1. v_proj -> o_proj   (GQA: the scales are averaged over the q heads sharing a kv head; no shift)
//   2. input_layernorm -> q_proj, k_proj, v_proj   (with channel shift: the norm gets bias −shift/s and each
//      linear gets bias W·shift, so the subgraph's output is unchanged)
// post_attention_layernorm, the router and the experts are not smoothed.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "quant/observers.h"

namespace moeslim::quant {

struct SmoothOptions {
  float alpha = 0.5f;       // AntiOutlierConfig's fixed value for Qwen3
  float scale_min = 1e-5f;  // lower bound of the weight statistic and of the scales
  DType float_dtype = DType::kBF16;
};

// s_c = max(dtype(dtype(a_c^α) / dtype(w_c^(1−α))), scale_min) with a_c = dtype(activation max |x_c|) and
// w_c = max(weight column max |W[:, c]|, scale_min) rounded to the dtype; exposed for tests.
std::vector<float> smooth_scales(const std::vector<float>& activation_abs_max,
                                 const std::vector<float>& weight_abs_max, const SmoothOptions& options);

// §3.6, in place on F32 copies: v_weight [kv_heads·head_dim, hidden], o_weight [hidden, q_heads·head_dim];
// `o_input` holds the statistics of o_proj's input. Returns what each of o_proj's input channels is now divided
// by (the GQA-averaged scale of its kv head's channel).
std::vector<float> smooth_v_to_o(Tensor& v_weight, Tensor& o_weight, const ChannelStatsObserver& o_input,
                                 std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim,
                                 const SmoothOptions& options);

struct NormLinearSmoothing {
  Tensor norm_weight;                // F32 [hidden]: γ / s
  Tensor norm_bias;                  // F32 [hidden]: −shift / s
  std::vector<Tensor> linear_biases;  // F32 [out_i]: W_i·shift with the weights before scaling, one per linear
  std::vector<float> shift;           // the linears' input is now (x − shift) / scale
  std::vector<float> scale;
};

// §3.5: the linears (F32 [out_i, hidden] copies) are scaled in place, column c by s_c; `input` holds the
// statistics of their shared input (the norm's output).
NormLinearSmoothing smooth_norm_to_linears(const Tensor& norm_weight, const std::vector<Tensor*>& linears,
                                           const ChannelStatsObserver& input, const SmoothOptions& options);

}  // namespace moeslim::quant
