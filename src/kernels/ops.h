// The element-wise and row-wise operations of the Qwen3-MoE forward pass, on float32 activations, computed
// the way Hugging Face transformers computes them in a float32 run (docs/qwen3-moe-forward.md §5). Each has an
// AVX-512 path and a portable path that give bit-identical results (cpu_features.h: set_kernel_isa forces one).
// Matrices are row-major and contiguous unless a stride is given. `out` may alias the input where noted.
// Rows are spread over the kernel threads (threading.h) when there is enough work; results do not depend on
// the thread count. Bad arguments throw Error(kInvalidArgument).
#pragma once

#include <cstdint>
#include <vector>

namespace moeslim::kernels {

// out[r,:] = weight ⊙ (x[r,:] · 1/√(mean(x[r,:]²) + eps)) for x [rows, n]: the mean in float32 (sum of squares
// over 16 fixed partial sums, then ÷ n), the reciprocal square root as 1/sqrt, then (x·r)·w as two float32
// products, like HF's `weight * (x * torch.rsqrt(var + eps))`. A bf16 weight is widened exactly to float32.
// q_norm / k_norm are this with rows = tokens·heads and n = head_dim. out may alias x.
void rms_norm(const float* x, std::int64_t rows, std::int64_t n, const float* weight, float eps, float* out);
void rms_norm(const float* x, std::int64_t rows, std::int64_t n, const std::uint16_t* weight_bf16, float eps,
              float* out);

// inv_freq[i] = 1 / θ^(2i/d), i < d/2, in float32 as PyTorch computes
// `1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))`.
std::vector<float> rope_inv_freq(std::int64_t head_dim, double theta);

// cos/sin of the rotary angles for a sequence, computed once and applied to q and k of every layer.
// angle[t,i] = float(position[t]) · inv_freq[i] (one float32 product, as HF's inv_freq @ positions), and
// cos/sin are of that float angle.
class RopeTable {
 public:
  RopeTable(const std::int64_t* positions, std::int64_t tokens, std::int64_t head_dim, double theta);

  // Rotate-half ("NeoX") RoPE in place on x [tokens, heads, head_dim] whose token rows are row_stride floats
  // apart (0: heads·head_dim). For i < d/2, with c, s of angle i:
  //   x'[i] = x[i]·c − x[i+d/2]·s,  x'[i+d/2] = x[i+d/2]·c + x[i]·s   (each product rounded, as PyTorch).
  void apply(float* x, std::int64_t heads, std::int64_t row_stride = 0) const;

  std::int64_t tokens() const { return tokens_; }
  std::int64_t head_dim() const { return head_dim_; }
  const float* cos_row(std::int64_t t) const { return cos_.data() + t * (head_dim_ / 2); }
  const float* sin_row(std::int64_t t) const { return sin_.data() + t * (head_dim_ / 2); }

 private:
  std::int64_t tokens_;
  std::int64_t head_dim_;
  std::vector<float> cos_;  // [tokens, head_dim/2]
  std::vector<float> sin_;
};

// One-shot: RopeTable(positions, tokens, head_dim, theta).apply(x, heads).
void rope_rotate_half(float* x, std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                      const std::int64_t* positions, double theta);

// out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + exp(-g)) as PyTorch's CPU kernel. out may alias either.
void silu_mul(const float* gate, const float* up, float* out, std::int64_t n);
// The same on a fused gate|up GEMM output [rows, 2·inter] (gate columns first): out [rows, inter], which must
// not overlap gate_up.
void silu_mul_fused(const float* gate_up, std::int64_t rows, std::int64_t inter, float* out);

// Row softmax of x [rows, n]: max-subtracted, exp, sum (16 fixed partial sums), times 1/sum. out may alias x.
void softmax_rows(const float* x, std::int64_t rows, std::int64_t n, float* out);

// The k largest values of each row of x [rows, n], in descending order; equal values are ordered by index,
// lower first (so the lower index wins a tie at the k-th place). NaN ranks below every number.
// indices and values: [rows, k]; values may be null.
void topk_rows(const float* x, std::int64_t rows, std::int64_t n, std::int64_t k, std::int32_t* indices,
               float* values);

// out[i,:] = x[rows[i],:] for i < n (x and out with `cols` floats per row): the tokens routed to one expert.
void gather_rows(const float* x, std::int64_t cols, const std::int32_t* rows, std::int64_t n, float* out);

// dst[rows[i],:] += src[i,:] · weights[i] for i < n, the product rounded before the sum (no fused
// multiply-add), as PyTorch adds an expert's weighted output. The rows must be distinct (spread over threads).
void add_weighted_rows(const float* src, std::int64_t n, std::int64_t cols, const std::int32_t* rows,
                       const float* weights, float* dst);

// dst[i,:] += src[i,:] for the `rows` rows of `cols` floats (the residual stream's update), over the threads.
void add_rows(const float* src, std::int64_t rows, std::int64_t cols, float* dst);

}  // namespace moeslim::kernels
