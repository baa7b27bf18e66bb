#include "model/causal_lm.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/profiler.h"
#include "model/layer_loader.h"

namespace moeslim::model {

CheckpointLayerSource::CheckpointLayerSource(const io::Checkpoint& checkpoint, ModelConfig config,
                                             FloatPrecision precision)
    : checkpoint_(checkpoint), config_(std::move(config)), precision_(precision) {}

DecoderLayer CheckpointLayerSource::load_layer(std::int64_t layer) {
  return build_float_layer(config_, layer, read_layer_tensors(checkpoint_, config_, layer), precision_);
}

void CheckpointLayerSource::release_layer(std::int64_t layer) {
  for (const ExpectedTensor& e : expected_layer_tensors(config_, layer)) checkpoint_.release(e.name);
}

Tensor CheckpointLayerSource::embedding() {
  return read_checked(checkpoint_, "model.embed_tokens.weight", {config_.vocab_size, config_.hidden_size});
}

Tensor CheckpointLayerSource::final_norm() {
  return to_f32_vector(read_checked(checkpoint_, "model.norm.weight", {config_.hidden_size}));
}

std::unique_ptr<Linear> CheckpointLayerSource::lm_head() {
  const std::string name = config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  // The head stays float32: it is float in every quantized format and decides the measured perplexity.
  return make_float_linear(read_checked(checkpoint_, name, {config_.vocab_size, config_.hidden_size}), Tensor(),
                           FloatPrecision::kF32);
}

Tensor embed(const Tensor& embedding, const std::vector<std::int32_t>& ids) {
  const std::int64_t vocab = embedding.dim(0);
  const std::int64_t H = embedding.dim(1);
  const auto n = static_cast<std::int64_t>(ids.size());
  Tensor out = Tensor::zeros(DType::kF32, {n, H});
  float* o = out.mutable_data<float>();
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int32_t id = ids[static_cast<std::size_t>(r)];
    if (id < 0 || id >= vocab) {
      throw Error(ErrorCode::kInvalidArgument,
                  "token id " + std::to_string(id) + " is outside the embedding's " + std::to_string(vocab) + " rows",
                  "", "model.embed_tokens.weight");
    }
    switch (embedding.dtype()) {
      case DType::kBF16: bf16_to_f32(embedding.data<std::uint16_t>() + id * H, o + r * H, H); break;
      case DType::kF16: f16_to_f32(embedding.data<std::uint16_t>() + id * H, o + r * H, H); break;
      case DType::kF32: std::memcpy(o + r * H, embedding.data<float>() + id * H, H * sizeof(float)); break;
      default: throw Error(ErrorCode::kUnsupported, "embedding must be a float tensor", "", "model.embed_tokens.weight");
    }
  }
  return out;
}

void run_layer_chunked(const ModelConfig& config, const DecoderLayer& layer, Tensor& hidden,
                       const TokenLayout& layout, std::int64_t max_rows, std::int64_t max_sequences,
                       ForwardObserver* observer) {
  const std::int64_t H = config.hidden_size;
  check_hidden_rows(config, hidden, layout);
  if (max_sequences <= 0) max_sequences = static_cast<std::int64_t>(layout.sequences.size());
  ForwardScratch scratch;  // one set of activation buffers for every chunk (model/forward_scratch.h)
  if (layout.rows() <= max_rows && static_cast<std::int64_t>(layout.sequences.size()) <= max_sequences) {
    layer.forward(config, hidden, layout, observer, &scratch);
    return;
  }
  float* h = hidden.mutable_data<float>();
  for (const LayoutChunk& chunk : split_into_chunks(layout, max_rows, max_sequences)) {  // rows where they lie
    layer.forward_attention(config, h + chunk.begin * H, chunk.layout, observer, scratch);
    layer.forward_mlp(config, h + chunk.begin * H, chunk.layout, observer, scratch);
  }
}

Tensor run_layers(LayerSource& source, const TokenSet& tokens, const RunOptions& options) {
  const ModelConfig& config = source.config();
  if (static_cast<std::int64_t>(tokens.ids.size()) != tokens.layout.rows()) {
    throw Error(ErrorCode::kInternal, "token ids and layout disagree on the row count");
  }
  if (!large_allocations_return_to_os()) log_warn("could not fix the allocator's mmap threshold; peak memory may grow with depth");
  Tensor hidden = embed(source.embedding(), tokens.ids);
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    throw_if_interrupted();
    {
      std::unique_ptr<ProfileScope> load_scope = std::make_unique<ProfileScope>(ProfileKind::kLoadWeights);
      const DecoderLayer layer = source.load_layer(l);
      load_scope.reset();
      run_layer_chunked(config, layer, hidden, tokens.layout, options.max_rows_per_chunk,
                        options.max_sequences_per_chunk, options.observer);
    }
    source.release_layer(l);
    if (options.after_layer) options.after_layer(l, hidden);
    if (options.on_layer_done) options.on_layer_done(l + 1, config.num_hidden_layers);
  }
  return hidden;
}

Tensor compute_logits(const ModelConfig& config, const Tensor& final_norm, const Linear& lm_head,
                      const Tensor& hidden, std::int64_t begin, std::int64_t count) {
  const std::int64_t H = config.hidden_size;
  Tensor normed = Tensor::zeros(DType::kF32, {count, H});
  RmsNorm norm{final_norm, Tensor()};
  norm.apply(hidden.data<float>() + begin * H, count, H, config.rms_norm_eps, normed.mutable_data<float>());
  Tensor logits = Tensor::zeros(DType::kF32, {count, lm_head.out_features()});
  ProfileScope scope(ProfileKind::kHead, 2.0 * count * H * static_cast<double>(lm_head.out_features()));
  lm_head.forward(normed.data<float>(), count, logits.mutable_data<float>());
  return logits;
}

}  // namespace moeslim::model
