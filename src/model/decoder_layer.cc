#include "model/decoder_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/profiler.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "kernels/threading.h"
#include "model/linear_call.h"
#include "model/moe_block.h"

namespace moeslim::model {
namespace {

// out[t] += Σ weight · expert(x[t]) over each token's chosen experts. The experts run as tasks over the
// threads when the observer allows it (kernels/threading.h: each expert's GEMMs on one thread, with buffers
// of its worker's own), heaviest first. Their outputs are added in ascending expert order, as Hugging Face
// adds them, so the sum does not depend on the threads; to bound memory, experts go in groups whose outputs
// fit about one chunk's rows per 16 workers, each group added before the next starts.
void run_experts(const MlpBlock& mlp, std::int64_t layer, const float* x, std::int64_t H, const TokenLayout& layout,
                 const ExpertRouting& routing, ForwardObserver* observer, ForwardScratch& scratch, float* out) {
  const bool parallel = experts_in_parallel(observer);
  const int workers = kernels::task_worker_count(parallel);
  scratch.prepare_workers(workers);
  const auto E = static_cast<std::int64_t>(routing.rows_of.size());
  const std::int64_t budget = layout.rows() * ((workers + 15) / 16);
  std::int64_t first = 0;
  while (first < E) {
    std::vector<std::int64_t> group;   // experts with rows in [first, last), ascending
    std::vector<std::int64_t> offset;  // each one's first row in the group's output
    std::int64_t total = 0;
    std::int64_t last = first;
    for (; last < E && (total == 0 || total + routing.rows_in(last) <= budget); ++last) {
      if (routing.rows_in(last) == 0) continue;
      group.push_back(last);
      offset.push_back(total);
      total += routing.rows_in(last);
    }
    first = last;
    if (group.empty()) continue;
    std::vector<std::size_t> order(group.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (parallel) {
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return routing.rows_in(group[a]) > routing.rows_in(group[b]);
      });
    }
    float* y = scratch.overwritten(ForwardScratch::kExpertOutput, total, H);
    kernels::run_tasks(static_cast<std::int64_t>(order.size()), parallel, [&](std::int64_t task, int worker) {
      const std::size_t i = order[static_cast<std::size_t>(task)];
      const std::int64_t e = group[i];
      run_expert_rows(mlp.experts[static_cast<std::size_t>(e)], layer, e, x, H, layout,
                      routing.rows_of[static_cast<std::size_t>(e)].data(), routing.rows_in(e), observer,
                      scratch.worker(worker), y + offset[i] * H);
    });
    ProfileScope scope(ProfileKind::kMoeDispatch);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const auto e = static_cast<std::size_t>(group[i]);
      kernels::add_weighted_rows(y + offset[i] * H, routing.rows_in(group[i]), H, routing.rows_of[e].data(),
                                 routing.weight_of[e].data(), out);
    }
  }
}

}  // namespace

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

void DecoderLayer::forward(const ModelConfig& config, Tensor& hidden, const TokenLayout& layout,
                           ForwardObserver* observer, ForwardScratch* scratch) const {
  ForwardScratch fresh;
  ForwardScratch& s = scratch != nullptr ? *scratch : fresh;
  forward_attention(config, hidden, layout, observer, s);
  forward_mlp(config, hidden, layout, observer, s);
}

void DecoderLayer::forward_attention(const ModelConfig& c, Tensor& hidden, const TokenLayout& layout,
                                     ForwardObserver* observer, ForwardScratch& scratch) const {
  const std::int64_t N = layout.rows();
  const std::int64_t H = c.hidden_size;
  const std::int64_t d = c.head_dim;
  const std::int64_t nh = c.num_attention_heads;
  const std::int64_t nkv = c.num_key_value_heads;
  if (hidden.rank() != 2 || hidden.dim(0) != N || hidden.dim(1) != H) {
    throw Error(ErrorCode::kInternal, "hidden state shape " + shape_to_string(hidden.shape()) +
                                          " does not match the token layout's " + std::to_string(N) + " rows");
  }
  const std::uint8_t* real = layout.real.data();

  float* normed = scratch.overwritten(ForwardScratch::kAttentionNormed, N, H);
  {
    ProfileScope scope(ProfileKind::kNormRope);
    attn.input_norm.apply(hidden.data<float>(), N, H, c.rms_norm_eps, normed);
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
  float* h = hidden.mutable_data<float>();
  for (std::int64_t i = 0; i < N * H; ++i) h[i] += o[i];
}

void DecoderLayer::forward_mlp(const ModelConfig& c, Tensor& hidden, const TokenLayout& layout,
                               ForwardObserver* observer, ForwardScratch& scratch) const {
  const std::int64_t N = layout.rows();
  const std::int64_t H = c.hidden_size;
  const std::uint8_t* real = layout.real.data();

  float* normed = scratch.overwritten(ForwardScratch::kMlpNormed, N, H);
  {
    ProfileScope scope(ProfileKind::kNormRope);
    mlp.post_norm.apply(hidden.data<float>(), N, H, c.rms_norm_eps, normed);
  }
  float* out = scratch.zeroed(ForwardScratch::kMlpOut, N, H);

  if (!mlp.is_moe) {
    swiglu_forward(mlp.dense, index, -1, normed, N, H, real, observer, scratch, out);
  } else {
    const ExpertRouting routing = route_tokens(c, mlp, index, normed, layout, observer, scratch);
    run_experts(mlp, index, normed, H, layout, routing, observer, scratch, out);
  }
  float* h = hidden.mutable_data<float>();
  for (std::int64_t i = 0; i < N * H; ++i) h[i] += out[i];
}

}  // namespace moeslim::model
