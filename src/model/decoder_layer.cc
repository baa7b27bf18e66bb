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

namespace moeslim::model {
namespace {

std::vector<std::uint8_t> gather_mask(const TokenLayout& layout, const std::vector<std::int32_t>& rows) {
  std::vector<std::uint8_t> out(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) out[i] = layout.real[static_cast<std::size_t>(rows[i])];
  return out;
}

// A linear's forward, timed under `kind` with its FLOP count when profiling is on.
void run_linear(const Linear& linear, const float* x, std::int64_t rows, float* y, ProfileKind kind) {
  ProfileScope scope(kind,
                     2.0 * static_cast<double>(rows) * static_cast<double>(linear.in_features()) *
                         static_cast<double>(linear.out_features()),
                     linear.integer_arithmetic() ? Arithmetic::kInteger : Arithmetic::kFloat);
  linear.forward(x, rows, y);
}

void observe(ForwardObserver* observer, const ModuleId& module, const float* x, std::int64_t rows,
             std::int64_t cols, const std::uint8_t* real) {
  if (observer != nullptr && observer->wants_linear_input(module)) {
    observer->on_linear_input(module, x, rows, cols, real);
  }
}

// y = down(silu(gate(x)) * up(x)) for `rows` rows of x; observers see gate/up's shared input and down's input.
void swiglu_forward(const SwiGluMlp& mlp, std::int64_t layer, std::int64_t expert, const float* x, std::int64_t rows,
                    std::int64_t hidden, const std::uint8_t* real, ForwardObserver* observer, ForwardScratch& scratch,
                    float* y) {
  const std::int64_t width = mlp.gate_proj->out_features();
  observe(observer, {layer, ModuleRole::kGateProj, expert}, x, rows, hidden, real);
  observe(observer, {layer, ModuleRole::kUpProj, expert}, x, rows, hidden, real);
  float* gate = scratch.overwritten(ForwardScratch::kGate, rows, width);
  float* up = scratch.overwritten(ForwardScratch::kUp, rows, width);
  run_linear(*mlp.gate_proj, x, rows, gate, ProfileKind::kExpertGemm);
  run_linear(*mlp.up_proj, x, rows, up, ProfileKind::kExpertGemm);
  {
    ProfileScope scope(ProfileKind::kMoeDispatch);
    kernels::silu_mul(gate, up, gate, rows * width);
  }
  observe(observer, {layer, ModuleRole::kDownProj, expert}, gate, rows, width, real);
  run_linear(*mlp.down_proj, gate, rows, y, ProfileKind::kExpertGemm);
}

// out[t] += Σ weight · expert(x[t]) over each token's chosen experts. The experts run as tasks over the
// threads when the observer allows it (kernels/threading.h: each expert's GEMMs on one thread, with buffers
// of its worker's own), heaviest first. Their outputs are added in ascending expert order, as Hugging Face
// adds them, so the sum does not depend on the threads; to bound memory, experts go in groups whose outputs
// fit about one chunk's rows per 16 workers, each group added before the next starts.
void run_experts(const MlpBlock& mlp, std::int64_t layer, const float* x, std::int64_t H, const TokenLayout& layout,
                 const std::vector<std::vector<std::int32_t>>& rows_of, const std::vector<std::vector<float>>& weight_of,
                 ForwardObserver* observer, ForwardScratch& scratch, float* out) {
  const bool parallel = observer == nullptr || observer->accepts_concurrent_modules();
  const int workers = kernels::task_worker_count(parallel);
  scratch.prepare_workers(workers);
  const auto E = static_cast<std::int64_t>(rows_of.size());
  const auto rows_in = [&](std::int64_t e) { return static_cast<std::int64_t>(rows_of[static_cast<std::size_t>(e)].size()); };
  const std::int64_t budget = layout.rows() * ((workers + 15) / 16);
  std::int64_t first = 0;
  while (first < E) {
    std::vector<std::int64_t> group;   // experts with rows in [first, last), ascending
    std::vector<std::int64_t> offset;  // each one's first row in the group's output
    std::int64_t total = 0;
    std::int64_t last = first;
    for (; last < E && (total == 0 || total + rows_in(last) <= budget); ++last) {
      if (rows_in(last) == 0) continue;
      group.push_back(last);
      offset.push_back(total);
      total += rows_in(last);
    }
    first = last;
    if (group.empty()) continue;
    std::vector<std::size_t> order(group.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (parallel) {
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return rows_in(group[a]) > rows_in(group[b]); });
    }
    float* y = scratch.overwritten(ForwardScratch::kExpertOutput, total, H);
    kernels::run_tasks(static_cast<std::int64_t>(order.size()), parallel, [&](std::int64_t task, int worker) {
      const std::size_t i = order[static_cast<std::size_t>(task)];
      const std::int64_t e = group[i];
      const auto& rows = rows_of[static_cast<std::size_t>(e)];
      const std::int64_t n = rows_in(e);
      ForwardScratch& own = scratch.worker(worker);
      float* g = own.overwritten(ForwardScratch::kExpertInput, n, H);
      kernels::gather_rows(x, H, rows.data(), n, g);
      const std::vector<std::uint8_t> mask = gather_mask(layout, rows);
      swiglu_forward(mlp.experts[static_cast<std::size_t>(e)], layer, e, g, n, H, mask.data(), observer, own,
                     y + offset[i] * H);
    });
    ProfileScope scope(ProfileKind::kMoeDispatch);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const std::int64_t e = group[i];
      kernels::add_weighted_rows(y + offset[i] * H, rows_in(e), H, rows_of[static_cast<std::size_t>(e)].data(),
                                 weight_of[static_cast<std::size_t>(e)].data(), out);
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
  observe(observer, {index, ModuleRole::kQProj}, normed, N, H, real);
  observe(observer, {index, ModuleRole::kKProj}, normed, N, H, real);
  observe(observer, {index, ModuleRole::kVProj}, normed, N, H, real);

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
  observe(observer, {index, ModuleRole::kOProj}, context, N, nh * d, real);
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
    const std::int64_t E = c.num_experts;
    const std::int64_t K = c.num_experts_per_tok;
    observe(observer, {index, ModuleRole::kRouter}, normed, N, H, real);
    float* logits = scratch.overwritten(ForwardScratch::kRouterLogits, N, E);
    run_linear(*mlp.router, normed, N, logits, ProfileKind::kRouterGemm);
    std::unique_ptr<ProfileScope> routing_scope = std::make_unique<ProfileScope>(ProfileKind::kMoeDispatch);
    kernels::softmax_rows(logits, N, E, logits);
    std::vector<std::int32_t> chosen(static_cast<std::size_t>(N * K));
    std::vector<float> weights(static_cast<std::size_t>(N * K));
    kernels::topk_rows(logits, N, E, K, chosen.data(), weights.data());
    if (c.norm_topk_prob) {
      for (std::int64_t t = 0; t < N; ++t) {
        float sum = 0;
        for (std::int64_t s = 0; s < K; ++s) sum += weights[t * K + s];
        for (std::int64_t s = 0; s < K; ++s) weights[t * K + s] /= sum;
      }
    }
    if (observer != nullptr) observer->on_routing(index, chosen.data(), weights.data(), N, K, real);

    // Group (token, weight) pairs by expert.
    std::vector<std::vector<std::int32_t>> rows_of(static_cast<std::size_t>(E));
    std::vector<std::vector<float>> weight_of(static_cast<std::size_t>(E));
    for (std::int64_t t = 0; t < N; ++t) {
      for (std::int64_t s = 0; s < K; ++s) {
        const auto e = static_cast<std::size_t>(chosen[t * K + s]);
        rows_of[e].push_back(static_cast<std::int32_t>(t));
        weight_of[e].push_back(weights[t * K + s]);
      }
    }
    routing_scope.reset();
    run_experts(mlp, index, normed, H, layout, rows_of, weight_of, observer, scratch, out);
  }
  float* h = hidden.mutable_data<float>();
  for (std::int64_t i = 0; i < N * H; ++i) h[i] += out[i];
}

}  // namespace moeslim::model
