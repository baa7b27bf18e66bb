#include "model/decoder_layer.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/profiler.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/linear_call.h"
#include "model/moe_block.h"

namespace moeslim::model {

void RmsNorm::apply(const float* x, std::int64_t rows, std::int64_t n, double eps, float* out) const {
  kernels::rms_norm(x, rows, n, weight.data<float>(), static_cast<float>(eps), out);
  if (!bias.empty() && bias.numel() > 0) {
    const float* b = bias.data<float>();
    for (std::int64_t r = 0; r < rows; ++r) {
      float* o = out + r * n;
      for (std::int64_t i = 0; i < n; ++i) o[i] += b[i];
    }
  }
}

void check_hidden_rows(const ModelConfig& config, const Tensor& hidden, const TokenLayout& layout) {
  if (hidden.rank() != 2 || hidden.dim(0) != layout.rows() || hidden.dim(1) != config.hidden_size) {
    throw Error(ErrorCode::kInternal, "hidden state shape " + shape_to_string(hidden.shape()) +
                                          " does not match the token layout's " + std::to_string(layout.rows()) +
                                          " rows");
  }
}

void DecoderLayer::forward(const ModelConfig& config, Tensor& hidden, const TokenLayout& layout,
                           ForwardObserver* observer, ForwardScratch* scratch) const {
  ForwardScratch fresh;
  ForwardScratch& s = scratch != nullptr ? *scratch : fresh;
  check_hidden_rows(config, hidden, layout);
  forward_attention(config, hidden.mutable_data<float>(), layout, observer, s);
  forward_mlp(config, hidden.mutable_data<float>(), layout, observer, s);
}

void DecoderLayer::forward_attention(const ModelConfig& c, float* hidden, const TokenLayout& layout,
                                     ForwardObserver* observer, ForwardScratch& scratch) const {
  const std::int64_t N = layout.rows();
  const std::int64_t H = c.hidden_size;
  const std::int64_t d = c.head_dim;
  const std::int64_t nh = c.num_attention_heads;
  const std::int64_t nkv = c.num_key_value_heads;
  const std::uint8_t* real = layout.real.data();

  float* normed = scratch.overwritten(ForwardScratch::kAttentionNormed, N, H);
  {
    ProfileScope scope(ProfileKind::kNormRope);
    attn.input_norm.apply(hidden, N, H, c.rms_norm_eps, normed);
  }
  observe_input(observer, {index, ModuleRole::kQProj}, normed, N, H, real);
  observe_input(observer, {index, ModuleRole::kKProj}, normed, N, H, real);
  observe_input(observer, {index, ModuleRole::kVProj}, normed, N, H, real);

  float* q = scratch.overwritten(ForwardScratch::kQ, N, nh * d);
  float* k = scratch.overwritten(ForwardScratch::kK, N, nkv * d);
  float* v = scratch.overwritten(ForwardScratch::kV, N, nkv * d);
  run_linear(*attn.q_proj, normed, N, q, ProfileKind::kAttentionGemm);
  run_linear(*attn.k_proj, normed, N, k, ProfileKind::kAttentionGemm);
  run_linear(*attn.v_proj, normed, N, v, ProfileKind::kAttentionGemm);

  // q_norm / k_norm: RMSNorm over head_dim of every head, before RoPE.
  {
    ProfileScope scope(ProfileKind::kNormRope);
    kernels::rms_norm(q, N * nh, d, attn.q_norm.data<float>(), static_cast<float>(c.rms_norm_eps), q);
    kernels::rms_norm(k, N * nkv, d, attn.k_norm.data<float>(), static_cast<float>(c.rms_norm_eps), k);
    kernels::rope_rotate_half(q, N, nh, d, layout.positions.data(), c.rope_theta);
    kernels::rope_rotate_half(k, N, nkv, d, layout.positions.data(), c.rope_theta);
  }

  float* context = scratch.zeroed(ForwardScratch::kContext, N, nh * d);
  {
    double flops = 0;
    for (const SequenceSpan& s : layout.sequences) flops += 2.0 * nh * d * static_cast<double>(s.length * s.length);
    ProfileScope scope(ProfileKind::kAttentionCore, flops);
    const bool padded = layout.has_padding();
    for (const SequenceSpan& s : layout.sequences) {
      kernels::AttentionDims dims;
      dims.tokens = s.length;
      dims.q_heads = nh;
      dims.kv_heads = nkv;
      dims.head_dim = d;
      const float* qs = q + s.begin * nh * d;
      const float* ks = k + s.begin * nkv * d;
      const float* vs = v + s.begin * nkv * d;
      float* out = context + s.begin * nh * d;
      if (padded) {
        kernels::causal_attention_padded(qs, ks, vs, dims, real + s.begin, out);
      } else {
        kernels::causal_attention(qs, ks, vs, dims, out);
      }
    }
  }
  observe_input(observer, {index, ModuleRole::kOProj}, context, N, nh * d, real);
  float* o = scratch.overwritten(ForwardScratch::kAttentionOut, N, H);
  run_linear(*attn.o_proj, context, N, o, ProfileKind::kAttentionGemm);
  kernels::add_rows(o, N, H, hidden);
}

void DecoderLayer::forward_mlp(const ModelConfig& c, float* hidden, const TokenLayout& layout,
                               ForwardObserver* observer, ForwardScratch& scratch) const {
  const std::int64_t N = layout.rows();
  const std::int64_t H = c.hidden_size;
  const std::uint8_t* real = layout.real.data();

  float* normed = scratch.overwritten(ForwardScratch::kMlpNormed, N, H);
  {
    ProfileScope scope(ProfileKind::kNormRope);
    mlp.post_norm.apply(hidden, N, H, c.rms_norm_eps, normed);
  }
  float* out = scratch.zeroed(ForwardScratch::kMlpOut, N, H);

  if (!mlp.is_moe) {
    swiglu_forward(mlp.dense, index, -1, normed, N, H, real, observer, scratch, out);
  } else {
    const ExpertRouting routing = route_tokens(c, mlp, index, normed, layout, observer, scratch);
    run_expert_group(c, *this, {0, c.num_experts}, {{0, &layout, &routing}}, normed, N, observer, scratch, out);
  }
  kernels::add_rows(out, N, H, hidden);
}

}  // namespace moeslim::model
