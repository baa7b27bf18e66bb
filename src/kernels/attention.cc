#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/dnnl_matmul.h"
#include "kernels/ops_common.h"
#include "kernels/softmax_row.h"

namespace moeslim::kernels {
namespace {

using dt = dnnl::memory::data_type;

// A task's buffers (each worker thread has its own).
struct Scratch {
  std::vector<float> q;       // [rows, d]: the block's q rows of one KV group, head-major
  std::vector<float> scores;  // [rows, keys], then the probabilities
  std::vector<float> o;       // [rows, d]
};

thread_local Scratch t_scratch;

// Keys (and so the score columns) are padded to a multiple of this; see attention_impl.
constexpr std::int64_t kKeyGranule = 64;

std::int64_t round_up(std::int64_t x, std::int64_t granule) { return (x + granule - 1) / granule * granule; }

float* sized(std::vector<float>& v, std::int64_t n) {
  if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
  return v.data();
}

void attention_impl(const float* q, const float* k, const float* v, const AttentionDims& dims,
                    const std::uint8_t* is_real, float* out) {
  const std::int64_t T = dims.tokens;
  const std::int64_t nh = dims.q_heads;
  const std::int64_t nkv = dims.kv_heads;
  const std::int64_t d = dims.head_dim;
  detail::require(T >= 0 && nh >= 1 && nkv >= 1 && d >= 1 && nh % nkv == 0, "causal_attention",
                  "bad dims: tokens=" + std::to_string(T) + " q_heads=" + std::to_string(nh) +
                      " kv_heads=" + std::to_string(nkv) + " head_dim=" + std::to_string(d));
  const std::int64_t qs = dims.q_row_stride ? dims.q_row_stride : nh * d;
  const std::int64_t ks = dims.k_row_stride ? dims.k_row_stride : nkv * d;
  const std::int64_t vs = dims.v_row_stride ? dims.v_row_stride : nkv * d;
  const std::int64_t os = dims.out_row_stride ? dims.out_row_stride : nh * d;
  detail::require(qs >= nh * d && ks >= nkv * d && vs >= nkv * d && os >= nh * d, "causal_attention",
                  "a row stride is smaller than heads·head_dim");
  if (T == 0) return;
  detail::require(q && k && v && out, "causal_attention", "null tensor");

  const std::int64_t group = nh / nkv;
  // HF: scores * (head_dim ** -0.5), a Python float applied to a float32 tensor: the scale rounded to float.
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  // Query rows per head and block: the GEMMs see group·block ≈ 512 rows (efficient; 128–1024 measured alike
  // at T=2048, where ~70% of the time is in the f32 GEMMs and ~16% in the softmax), and the causal waste
  // (keys up to the block's end) stays ≈ block/T. GEMM shapes come from a small set so the primitive cache
  // stays bounded across sequence lengths (row_blocks.h explains why): every block has group·block rows
  // (the last one padded with zero rows) and the keys are padded with zero rows to a multiple of 64.
  const std::int64_t block = std::min(std::clamp<std::int64_t>(512 / group, 16, 256), round_up(T, 16));
  const std::int64_t rows = group * block;
  const std::int64_t padded_tokens = round_up(T, kKeyGranule);
  const std::int64_t blocks = (T + block - 1) / block;
  // Dense copies of every KV head's keys and values, zero-padded: oneDNN's fast (brgemm) kernels want dense
  // operands. [nkv, padded_tokens, d] each.
  std::vector<float> kd(static_cast<std::size_t>(nkv * padded_tokens * d), 0.0f);
  std::vector<float> vd(static_cast<std::size_t>(nkv * padded_tokens * d), 0.0f);
  for (std::int64_t c = 0; c < nkv; ++c) {
    for (std::int64_t t = 0; t < T; ++t) {
      std::memcpy(kd.data() + (c * padded_tokens + t) * d, k + t * ks + c * d, sizeof(float) * d);
      std::memcpy(vd.data() + (c * padded_tokens + t) * d, v + t * vs + c * d, sizeof(float) * d);
    }
  }
  // One task per KV head and block of query rows, later blocks (more keys) first. Each task's GEMMs and
  // softmax are the ones a single thread would run for it, so the output does not depend on how the tasks
  // fall on the threads; a block's GEMMs alone are too small to share two threads well.
  const std::int64_t tasks = nkv * blocks;
  run_tasks(tasks, true, [&](std::int64_t task, int) {
    const std::int64_t c = task % nkv;
    const std::int64_t r0 = (blocks - 1 - task / nkv) * block;
    const float* kc = kd.data() + c * padded_tokens * d;
    const float* vc = vd.data() + c * padded_tokens * d;
    Scratch& s = t_scratch;
    float* qb = sized(s.q, rows * d);
    float* ob = sized(s.o, rows * d);
    float* scores = sized(s.scores, rows * padded_tokens);
    const std::int64_t bq = std::min(block, T - r0);  // real query rows per head in this block
    const std::int64_t keys = std::min(round_up(r0 + bq, kKeyGranule), padded_tokens);  // causal limit
    for (std::int64_t u = 0; u < group; ++u) {
      for (std::int64_t i = 0; i < block; ++i) {
        float* dst = qb + (u * block + i) * d;
        if (i < bq) {
          std::memcpy(dst, q + (r0 + i) * qs + (c * group + u) * d, sizeof(float) * d);
        } else {
          std::fill(dst, dst + d, 0.0f);
        }
      }
    }
    // S = Qb · K[0:keys]ᵀ
    const detail::MatmulProblem qk{detail::row_major_desc(rows, d, d, dt::f32),
                                   detail::transposed_weight_desc(keys, d, d, dt::f32),
                                   detail::row_major_desc(rows, keys, keys, dt::f32)};
    detail::run_matmul(qk, qb, kc, scores);
    for (std::int64_t row = 0; row < rows; ++row) {
      float* p = scores + row * keys;
      const std::int64_t i = row % block;
      const std::int64_t t = r0 + i;
      if (i >= bq) {  // a padding row: its output is discarded
        std::fill(p, p + keys, 0.0f);
        continue;
      }
      if (is_real != nullptr && !is_real[t]) {
        std::fill(p, p + keys, 0.0f);  // a pad query attends only to itself
        p[t] = 1.0f;
        continue;
      }
      const std::int64_t visible = t + 1;
      if (is_real != nullptr) {
        for (std::int64_t j = 0; j < visible; ++j) {
          if (!is_real[j]) p[j] = -std::numeric_limits<float>::infinity();  // exp gives exactly 0
        }
      }
      detail::softmax_row(p, p, visible, scale);
      std::fill(p + visible, p + keys, 0.0f);
    }
    // Ob = P · V[0:keys]
    const detail::MatmulProblem pv{detail::row_major_desc(rows, keys, keys, dt::f32),
                                   detail::row_major_desc(keys, d, d, dt::f32),
                                   detail::row_major_desc(rows, d, d, dt::f32)};
    detail::run_matmul(pv, scores, vc, ob);
    for (std::int64_t u = 0; u < group; ++u) {
      for (std::int64_t i = 0; i < bq; ++i) {
        std::memcpy(out + (r0 + i) * os + (c * group + u) * d, ob + (u * block + i) * d, sizeof(float) * d);
      }
    }
  });
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, const AttentionDims& dims, float* out) {
  attention_impl(q, k, v, dims, nullptr, out);
}

void causal_attention_padded(const float* q, const float* k, const float* v, const AttentionDims& dims,
                             const std::uint8_t* is_real, float* out) {
  detail::require(is_real != nullptr || dims.tokens == 0, "causal_attention_padded", "null padding mask");
  attention_impl(q, k, v, dims, is_real, out);
}

}  // namespace moeslim::kernels
