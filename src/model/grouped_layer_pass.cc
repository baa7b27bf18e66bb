#include "model/grouped_layer_pass.h"

#include <limits>

#include "core/error.h"
#include "core/profiler.h"
#include "kernels/ops.h"
#include "model/forward_scratch.h"
#include "model/moe_block.h"

namespace moeslim::model {

std::int64_t ExpertGroupInputs::rows(std::int64_t expert) const {
  std::int64_t n = 0;
  for (const RoutedChunk& c : chunks_) n += c.routing->rows_in(expert);
  return n;
}

Tensor ExpertGroupInputs::gather(std::int64_t expert, std::vector<std::uint8_t>* real) const {
  const std::int64_t n = rows(expert);
  Tensor out = Tensor::zeros(DType::kF32, {n, hidden_});
  if (real != nullptr) real->clear();
  std::int64_t row = 0;
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const std::vector<std::int32_t>& rows_of = chunks_[c].routing->rows_of[static_cast<std::size_t>(expert)];
    kernels::gather_rows(normed_ + chunks_[c].begin * hidden_, hidden_, rows_of.data(),
                         static_cast<std::int64_t>(rows_of.size()), out.mutable_data<float>() + row * hidden_);
    row += static_cast<std::int64_t>(rows_of.size());
    if (real != nullptr) {
      for (const std::int32_t r : rows_of) real->push_back(chunks_[c].layout->real[static_cast<std::size_t>(r)]);
    }
  }
  return out;
}

std::vector<ExpertRange> expert_groups(std::int64_t num_experts, std::int64_t per_group) {
  if (per_group <= 0) throw Error(ErrorCode::kInvalidArgument, "experts per group must be at least 1");
  std::vector<ExpertRange> groups;
  for (std::int64_t first = 0; first < num_experts; first += per_group) {
    groups.push_back({first, std::min(num_experts, first + per_group)});
  }
  return groups;
}

void run_layer_grouped(const ModelConfig& config, DecoderLayer& layer, Tensor& hidden, const TokenLayout& layout,
                       std::int64_t max_sequences, const std::vector<ExpertRange>& groups, ForwardObserver* observer,
                       const ExpertGroupHooks& hooks, ForwardScratch* kept_scratch) {
  const std::int64_t H = config.hidden_size;
  const std::int64_t N = layout.rows();
  check_hidden_rows(config, hidden, layout);
  std::int64_t covered = 0;  // the groups must be [0, num_experts) in order, or some output would be missing
  for (const ExpertRange& g : groups) {
    if (g.first != covered || g.last <= g.first) break;
    covered = g.last;
  }
  if (layer.mlp.is_moe && covered != config.num_experts) {
    throw Error(ErrorCode::kInternal, "the expert groups of layer " + std::to_string(layer.index) +
                                          " do not cover its experts in order");
  }
  const std::vector<LayoutChunk> chunks =
      split_into_chunks(layout, std::numeric_limits<std::int64_t>::max(), max_sequences);
  // One set of activation buffers for every chunk (model/forward_scratch.h), kept across passes when the
  // caller keeps it; each chunk's rows are worked on where they lie in `hidden`.
  ForwardScratch fresh;
  ForwardScratch& scratch = kept_scratch != nullptr ? *kept_scratch : fresh;
  float* h = hidden.mutable_data<float>();

  for (const LayoutChunk& chunk : chunks) {
    layer.forward_attention(config, h + chunk.begin * H, chunk.layout, observer, scratch);
  }
  if (hooks.after_attention) hooks.after_attention();

  if (!layer.mlp.is_moe) {
    for (const LayoutChunk& chunk : chunks) {
      layer.forward_mlp(config, h + chunk.begin * H, chunk.layout, observer, scratch);
    }
    return;
  }

  // The MoE block's input and routing for every chunk, then its output, summed group by group. Both span the
  // whole set: the MLP slots, which the chunk-by-chunk forward_mlp would use, are free in a MoE layer.
  float* normed = scratch.overwritten(ForwardScratch::kMlpNormed, N, H);
  std::vector<ExpertRouting> routing;
  routing.reserve(chunks.size());
  for (const LayoutChunk& chunk : chunks) {
    const std::int64_t rows = chunk.layout.rows();
    float* x = normed + chunk.begin * H;
    {
      ProfileScope scope(ProfileKind::kNormRope);
      layer.mlp.post_norm.apply(h + chunk.begin * H, rows, H, config.rms_norm_eps, x);
    }
    routing.push_back(route_tokens(config, layer.mlp, layer.index, x, chunk.layout, observer, scratch));
  }
  float* out = scratch.zeroed(ForwardScratch::kMlpOut, N, H);
  if (static_cast<std::int64_t>(layer.mlp.experts.size()) < config.num_experts) {
    layer.mlp.experts.resize(static_cast<std::size_t>(config.num_experts));
  }
  std::vector<RoutedChunk> routed;
  for (std::size_t c = 0; c < chunks.size(); ++c) routed.push_back({chunks[c].begin, &chunks[c].layout, &routing[c]});
  for (const ExpertRange& group : groups) {
    if (hooks.load_experts) hooks.load_experts(group, ExpertGroupInputs(routed, normed, H));
    run_expert_group(config, layer, group, routed, normed, N, observer, scratch, out);
    if (hooks.unload_experts) hooks.unload_experts(group);
  }
  kernels::add_rows(out, N, H, h);
}

}  // namespace moeslim::model
