#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/scoped_threads.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::random_floats;

// Straightforward double-precision attention; is_real may be null (plain causal).
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const AttentionDims& d,
                                    const std::uint8_t* is_real) {
  const std::int64_t T = d.tokens, nh = d.q_heads, nkv = d.kv_heads, hd = d.head_dim, g = nh / nkv;
  std::vector<double> out(static_cast<std::size_t>(T * nh * hd), 0.0);
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t j = 0; j < nh; ++j) {
      const std::int64_t c = j / g;
      std::vector<double> p(static_cast<std::size_t>(t + 1), 0.0);
      double mx = -INFINITY;
      for (std::int64_t s = 0; s <= t; ++s) {
        const bool visible = is_real == nullptr || (is_real[t] ? is_real[s] != 0 : s == t);
        if (!visible) {
          p[s] = -INFINITY;
          continue;
        }
        double dot = 0;
        for (std::int64_t i = 0; i < hd; ++i) dot += static_cast<double>(q[(t * nh + j) * hd + i]) * k[(s * nkv + c) * hd + i];
        p[s] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, p[s]);
      }
      double sum = 0;
      for (double& x : p) sum += (x = std::exp(x - mx));
      for (std::int64_t s = 0; s <= t; ++s) {
        for (std::int64_t i = 0; i < hd; ++i) out[(t * nh + j) * hd + i] += p[s] / sum * v[(s * nkv + c) * hd + i];
      }
    }
  }
  return out;
}

struct Case {
  std::int64_t tokens, q_heads, kv_heads, head_dim;
};

// Single token; GQA groups 2, 4 and 8 (Qwen3-30B); MHA; lengths across several query blocks.
const Case kCases[] = {{1, 4, 2, 64}, {5, 8, 2, 64}, {37, 4, 4, 16}, {70, 8, 1, 32}, {300, 16, 2, 24}};

struct Inputs {
  AttentionDims dims;
  std::vector<float> q, k, v;
  explicit Inputs(const Case& c, std::uint32_t seed) {
    dims = {c.tokens, c.q_heads, c.kv_heads, c.head_dim};
    // Scaled so scores spread over several units and the softmax is far from uniform.
    q = random_floats(static_cast<std::size_t>(c.tokens * c.q_heads * c.head_dim), seed, -2.0f, 2.0f);
    k = random_floats(static_cast<std::size_t>(c.tokens * c.kv_heads * c.head_dim), seed + 1, -2.0f, 2.0f);
    v = random_floats(static_cast<std::size_t>(c.tokens * c.kv_heads * c.head_dim), seed + 2);
  }
};

TEST(Attention, CausalMatchesNaiveDouble) {
  std::uint32_t seed = 1;
  for (const Case& c : kCases) {
    const Inputs in(c, seed += 3);
    std::vector<float> out(static_cast<std::size_t>(c.tokens * c.q_heads * c.head_dim));
    causal_attention(in.q.data(), in.k.data(), in.v.data(), in.dims, out.data());
    const std::vector<double> ref = naive_attention(in.q, in.k, in.v, in.dims, nullptr);
    EXPECT_LE(testing::rel_l2(out, ref), 1e-5) << "T=" << c.tokens << " heads " << c.q_heads << "/" << c.kv_heads;
  }
}

TEST(Attention, PathsAreBitIdentical) {
  const Inputs in({70, 8, 2, 64}, 50);
  std::vector<std::vector<float>> results;
  for (KernelIsa isa : testing::runnable_isas()) {
    testing::ScopedKernelIsa scoped(isa);
    std::vector<float> out(in.q.size());
    causal_attention(in.q.data(), in.k.data(), in.v.data(), in.dims, out.data());
    results.push_back(out);
  }
  for (const auto& r : results) EXPECT_EQ(r, results.front());
}

// The (KV head, query block) tasks fall on the threads differently at each count; the bits must not move.
// 300 tokens with 8 heads per KV head make several blocks per head (and a short last one).
TEST(Attention, BitsDoNotDependOnTheThreadCount) {
  const Inputs in({300, 16, 2, 24}, 90);
  std::vector<std::uint8_t> is_real(300, 1);
  is_real[0] = is_real[1] = is_real[150] = 0;
  std::vector<std::vector<float>> plain, padded;
  for (int threads : {1, 2, 3}) {
    moeslim::testing::ScopedThreads scoped(threads);
    std::vector<float> out(in.q.size()), out_padded(in.q.size());
    causal_attention(in.q.data(), in.k.data(), in.v.data(), in.dims, out.data());
    causal_attention_padded(in.q.data(), in.k.data(), in.v.data(), in.dims, is_real.data(), out_padded.data());
    plain.push_back(out);
    padded.push_back(out_padded);
  }
  for (std::size_t i = 1; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i], plain.front()) << "thread count #" << i;
    EXPECT_EQ(padded[i], padded.front()) << "thread count #" << i;
  }
}

TEST(Attention, PaddedMatchesNaiveAndEqualsUnpaddedAtRealTokens) {
  const Case c{40, 8, 2, 32};
  const std::int64_t pads = 9, width = c.q_heads * c.head_dim, kv_width = c.kv_heads * c.head_dim;
  const Inputs in(c, 70);
  std::vector<std::uint8_t> is_real(static_cast<std::size_t>(c.tokens), 1);
  for (std::int64_t t = 0; t < pads; ++t) is_real[t] = 0;  // left padding
  is_real[20] = 0;                                          // and a pad in the middle, for the mask logic
  std::vector<float> out(in.q.size());
  causal_attention_padded(in.q.data(), in.k.data(), in.v.data(), in.dims, is_real.data(), out.data());
  EXPECT_LE(testing::rel_l2(out, naive_attention(in.q, in.k, in.v, in.dims, is_real.data())), 1e-5);
  // A pad query sees only itself: its output is its own v (per head group).
  for (std::int64_t t : {std::int64_t{0}, pads - 1, std::int64_t{20}}) {
    for (std::int64_t j = 0; j < c.q_heads; ++j) {
      const std::int64_t kv = j / (c.q_heads / c.kv_heads);
      for (std::int64_t i = 0; i < c.head_dim; ++i) {
        EXPECT_EQ(out[t * width + j * c.head_dim + i], in.v[t * kv_width + kv * c.head_dim + i]);
      }
    }
  }
  // Left padding only: real tokens give what the unpadded sequence gives (same q/k/v rows).
  std::vector<std::uint8_t> left_only(static_cast<std::size_t>(c.tokens), 1);
  for (std::int64_t t = 0; t < pads; ++t) left_only[t] = 0;
  causal_attention_padded(in.q.data(), in.k.data(), in.v.data(), in.dims, left_only.data(), out.data());
  AttentionDims real_dims = in.dims;
  real_dims.tokens = c.tokens - pads;
  std::vector<float> unpadded(static_cast<std::size_t>(real_dims.tokens * width));
  causal_attention(in.q.data() + pads * width, in.k.data() + pads * kv_width, in.v.data() + pads * kv_width,
                   real_dims, unpadded.data());
  EXPECT_LE(testing::rel_l2(out.data() + pads * width, width, unpadded.data(), width, real_dims.tokens, width), 1e-6);
}

TEST(Attention, ViewsIntoAFusedQkvBuffer) {
  const Case c{33, 4, 2, 16};
  const Inputs in(c, 90);
  const std::int64_t qw = c.q_heads * c.head_dim, kw = c.kv_heads * c.head_dim, row = qw + 2 * kw;
  std::vector<float> qkv(static_cast<std::size_t>(c.tokens * row));
  for (std::int64_t t = 0; t < c.tokens; ++t) {
    std::copy_n(in.q.begin() + t * qw, qw, qkv.begin() + t * row);
    std::copy_n(in.k.begin() + t * kw, kw, qkv.begin() + t * row + qw);
    std::copy_n(in.v.begin() + t * kw, kw, qkv.begin() + t * row + qw + kw);
  }
  AttentionDims dims = in.dims;
  dims.q_row_stride = dims.k_row_stride = dims.v_row_stride = row;
  dims.out_row_stride = qw + 5;
  std::vector<float> strided(static_cast<std::size_t>(c.tokens * dims.out_row_stride), 0.0f);
  std::vector<float> packed(in.q.size());
  causal_attention(qkv.data(), qkv.data() + qw, qkv.data() + qw + kw, dims, strided.data());
  causal_attention(in.q.data(), in.k.data(), in.v.data(), in.dims, packed.data());
  EXPECT_LE(testing::rel_l2(strided.data(), dims.out_row_stride, packed.data(), qw, c.tokens, qw), 1e-6);
}

// GEMM shapes are padded (rows to the block, keys to a multiple of 64) so that sequences of many lengths
// share primitives: here 41 lengths need at most 2 GEMMs × 6 key counts (64..384).
TEST(Attention, ManySequenceLengthsShareFewPrimitives) {
  const Inputs in({340, 8, 1, 16}, 110);
  std::vector<float> out(in.q.size());
  AttentionDims dims = in.dims;
  dims.tokens = 300;
  causal_attention(in.q.data(), in.k.data(), in.v.data(), dims, out.data());
  const std::uint64_t before = gemm_cache_stats().misses;
  for (std::int64_t t = 300; t <= 340; ++t) {
    dims.tokens = t;
    causal_attention(in.q.data(), in.k.data(), in.v.data(), dims, out.data());
  }
  EXPECT_LE(gemm_cache_stats().misses - before, 12u);
  dims.tokens = 340;
  const std::vector<double> ref = naive_attention(in.q, in.k, in.v, dims, nullptr);
  EXPECT_LE(testing::rel_l2(out, ref), 1e-5);
}

TEST(Attention, RejectsBadDims) {
  std::vector<float> buf(64);
  EXPECT_THROW(causal_attention(buf.data(), buf.data(), buf.data(), {2, 3, 2, 4}, buf.data()), Error);
  EXPECT_THROW(causal_attention_padded(buf.data(), buf.data(), buf.data(), {2, 2, 1, 4}, nullptr, buf.data()), Error);
  causal_attention(nullptr, nullptr, nullptr, {0, 2, 1, 4}, nullptr);  // no tokens: nothing to do
}

}  // namespace
}  // namespace moeslim::kernels
