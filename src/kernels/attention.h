// Causal grouped-query attention for ONE sequence (packed calibration batches run it once per sequence):
//   out[t, j] = Σ_{s visible from t} softmax_s(q[t,j]·k[s,g(j)] / √d) · v[s, g(j)],  g(j) = j / (q_heads/kv_heads)
// Scores and softmax in float32 like HF's eager path (scores·scale as one float product, masked keys
// contribute exactly 0). Positions (RoPE) are the caller's business: q and k arrive already rotated.
//
// Implementation: per KV head and block of query rows, the q rows of all heads sharing that KV head are
// stacked into one matrix and go through two float32 oneDNN GEMMs (Q·Kᵀ over the keys up to the block's
// last row, then P·V); the causal triangle inside a block is masked. Work ≈ T²/2 per head, not T². The
// (KV head, block) pairs are tasks over the kernel threads (kernels/threading.h), each on one thread.
#pragma once

#include <cstdint>

namespace moeslim::kernels {

struct AttentionDims {
  std::int64_t tokens = 0;
  std::int64_t q_heads = 0;
  std::int64_t kv_heads = 0;   // divides q_heads
  std::int64_t head_dim = 0;
  // Floats between consecutive token rows; 0 means packed (heads·head_dim). Lets q/k/v be views into a
  // fused QKV projection output.
  std::int64_t q_row_stride = 0;
  std::int64_t k_row_stride = 0;
  std::int64_t v_row_stride = 0;
  std::int64_t out_row_stride = 0;
};

// q: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim]; out: [tokens, q_heads·head_dim].
// Query t sees keys s ≤ t.
void causal_attention(const float* q, const float* k, const float* v, const AttentionDims& dims, float* out);

// With padding. is_real[t] = 1 for a real token, 0 for a pad. A real query t sees the real keys s ≤ t; a pad
// query sees only itself (so its output is its own v) — the convention of the project's reference outputs.
// (Plain HF forward instead gives pad queries a near-uniform row; pad outputs must be ignored either way.)
void causal_attention_padded(const float* q, const float* k, const float* v, const AttentionDims& dims,
                             const std::uint8_t* is_real, float* out);

}  // namespace moeslim::kernels
