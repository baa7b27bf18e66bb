// Smoothing beyond m4: msModelSlim's flex_smooth_quant (docs/msmodelslim-algorithms.md §6.3) and two
// MoE subgraphs msModelSlim does not have (moe-input, up-down).
//
// Every smoothing moves a per-channel scale s from a linear's input into its weight columns: the producer of the
// input is divided by s (a norm weight γ, or the rows of the linear that produces it) and the consumers' columns
// are multiplied by s, so the float subgraph computes the same function in exact arithmetic while the input the
// consumers quantize per token has flatter channels. Weights are F32 copies [out, in] edited in place; every
// step rounds to the model's float dtype (BF16 normally) in msModelSlim's op order, as m4_smoothing.cc does:
//   w = dt(max(dt(max_i |W[i,j]|), 1e-5))   a = dt(max_t |x_tj|)
//   s = dt(max(dt(dt(a^α) / dt(w^β)), 1e-5))                    (flex_scales)
//   producer ← dt(producer · dt(1/s))   consumers ← dt(W ⊙ s)   (multiply by the reciprocal, never divide)
//
// α and β come from the search in flex_search.h (msModelSlim's YAMLs leave them unset) or from the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace moeslim::quant {

// s_j = dt(max(dt(dt(a_j^α) / dt(w_j^β)), 1e-5)) with a_j = dt(act_abs_max_j), w_j = dt(max(dt(weight_abs_max_j),
// 1e-5)) (FlexSmoothScaleCalculator). β = 1 − α gives m4's formula (m4 differs only in clamping against dt(1e-5)
// rather than 1e-5), so callers that want m4-flavoured scales pass β = 1 − α; there is no separate variant.
std::vector<float> flex_scales(const std::vector<float>& act_abs_max, const std::vector<float>& weight_abs_max,
                               double alpha, double beta, DType float_dtype);

// norm-linear: w_j = max over the linears of |W[:, j]|; every linear's column j ⊙ s_j, γ ← dt(γ · dt(1/s)).
// No shift, no bias: the norm stays a plain RMSNorm. norm_weight: F32 [C]; linears: F32 [out_i, C];
// act_abs_max: the norm output's max|x| per channel [C].
// Returns s: each smoothed linear's input channel j is now divided by s_j.
std::vector<float> flex_smooth_norm_linear(Tensor& norm_weight, const std::vector<Tensor*>& linears,
                             const std::vector<float>& act_abs_max, double alpha, double beta, DType float_dtype);

// ov with group_method "max": a and w = dt(max(…, 1e-5)) of o_proj's columns are viewed as [kv_heads, g, head_dim]
// (kv head k serves q heads k·g … k·g+g−1) and maxed over g before combining, G = flex_scales(a_max, w_max)
// [kv_heads·head_dim]; v_proj row n ← dt(row · dt(1/G_n)), o_proj column of q head h, dim d ← dt(col · G[h/g, d]).
// v_weight: F32 [kv_heads·head_dim, hidden]; o_weight: F32 [hidden, q_heads·head_dim]; o_input_abs_max: [q·hd].
// Returns what each of o_proj's input channels is now divided by (G repeated over each kv head's q heads).
std::vector<float> flex_smooth_ov(Tensor& v_weight, Tensor& o_weight, const std::vector<float>& o_input_abs_max,
                    std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim, double alpha, double beta,
                    DType float_dtype);

// The steps the smoothing subgraphs are made of, public so a caller can apply a subgraph one tensor at a time
// (the pipeline smooths experts as it quantizes them, never holding all of a layer's experts in float32):
//   scale_columns             W[:, j] ← dt(W[:, j] · s_j)              (the consumer side; W F32 [out, C], owned)
//   scale_rows_by_reciprocal  W[n, :] ← dt(W[n, :] · dt(1/s_n))        (a producer linear; W F32 [C, in], owned)
//   scale_norm                γ_j ← dt(γ_j · dt(1/s_j))                 (a producer norm; γ F32 [C], owned)
//   accumulate_column_abs_max running[j] ← max(running[j], max_i |W[i, j]|) (any float dtype, views fine; read
//                             row by row, so a bf16 expert is never copied whole)
//   moe_input_scales          smooth_moe_input's s from the experts' gate/up weights (any float dtype, views fine):
//                             flex_scales of the activation maxima and the weights' accumulated column maxima
//   up_down_scales            smooth_up_down's s from down_proj (any float dtype, views fine); empty statistics
//                             give an empty vector (s = 1)
// They check nothing beyond what the smooth_* functions below check before calling them.
void scale_columns(Tensor& w, const std::vector<float>& s, DType float_dtype);
void accumulate_column_abs_max(const Tensor& w, std::vector<float>& running);
void scale_rows_by_reciprocal(Tensor& w, const std::vector<float>& s, DType float_dtype);
void scale_norm(Tensor& gamma, const std::vector<float>& s, DType float_dtype);
std::vector<float> moe_input_scales(const std::vector<const Tensor*>& expert_gate_up,
                                    const std::vector<float>& act_abs_max, double alpha, double beta,
                                    DType float_dtype);
std::vector<float> up_down_scales(const Tensor& down, const std::vector<float>& inter_abs_max, double alpha,
                                  double beta, DType float_dtype);

// NEW (not in msModelSlim) — moe-input: post_attention_layernorm → router + every expert's gate_proj and up_proj.
// One scale vector for the shared input: w_j = max over all experts' gate/up columns |W[:, j]| (the router is left
// out: it stays float, so its range does not matter), s = flex_scales(a, w); γ ← dt(γ · dt(1/s)), every expert
// gate/up column j ⊙ s_j and the router's column j ⊙ s_j too, so router logits (hence routing) are unchanged in
// exact arithmetic; in bf16 they move by rounding noise only. norm_weight F32 [hidden]; router F32
// [experts, hidden]; expert_gate_up F32 [inter, hidden] each (no duplicates, not the router); act_abs_max [hidden]
// pooled over every real token (all experts see the same input).
void smooth_moe_input(Tensor& norm_weight, Tensor& router, const std::vector<Tensor*>& expert_gate_up,
                      const std::vector<float>& act_abs_max, double alpha, double beta, DType float_dtype);

// NEW — up-down inside one expert: h = silu(gate·x) ⊙ (up·x) is linear in up's rows, so up row j ← dt(row ·
// dt(1/s_j)) and down column j ← dt(col ⊙ s_j) leave down(h) unchanged in exact arithmetic. w_j = max_i
// |W_down[i, j]|, s = flex_scales(inter_abs_max, w). up: F32 [inter, hidden]; down: F32 [hidden, inter];
// inter_abs_max: max|h_j| over the tokens routed to this expert [inter]. An expert that saw no token has no
// statistics: pass an empty vector and nothing changes (s = 1), rather than the 1e-5 floor that all-zero
// statistics would give (which would blow up's rows up by 1e5 for nothing).
void smooth_up_down(Tensor& up, Tensor& down, const std::vector<float>& inter_abs_max, double alpha, double beta,
                    DType float_dtype);

}  // namespace moeslim::quant
