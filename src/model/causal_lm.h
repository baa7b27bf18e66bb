// The whole causal LM, run layer-major: every row of a token set goes through layer 0, then layer 1, ...
// so only one decoder layer's weights are touched at a time (the streaming pipeline's shape).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/linear.h"
#include "model/observer.h"
#include "model/token_layout.h"

namespace moeslim::model {

// Token ids and their layout (sequences, positions, pad mask).
struct TokenSet {
  std::vector<std::int32_t> ids;  // per row
  TokenLayout layout;
};

// Supplies decoder layers one at a time (a float checkpoint, a quantized directory, a pipeline's output).
class LayerSource {
 public:
  virtual ~LayerSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual DecoderLayer load_layer(std::int64_t layer) = 0;
  // Called when a layer is no longer needed: drop its mapped pages.
  virtual void release_layer(std::int64_t layer) {}
  virtual Tensor embedding() = 0;     // [vocab, hidden], any float dtype
  virtual Tensor final_norm() = 0;    // F32 [hidden]
  virtual std::unique_ptr<Linear> lm_head() = 0;
};

// A float Hugging Face checkpoint as a LayerSource.
class CheckpointLayerSource : public LayerSource {
 public:
  CheckpointLayerSource(const io::Checkpoint& checkpoint, ModelConfig config, FloatPrecision precision);
  const ModelConfig& config() const override { return config_; }
  DecoderLayer load_layer(std::int64_t layer) override;
  void release_layer(std::int64_t layer) override;
  Tensor embedding() override;
  Tensor final_norm() override;
  std::unique_ptr<Linear> lm_head() override;

 private:
  const io::Checkpoint& checkpoint_;
  ModelConfig config_;
  FloatPrecision precision_;
};

// hidden[r] = embedding[ids[r]] as float32. Ids outside the vocabulary are a kInvalidArgument error.
Tensor embed(const Tensor& embedding, const std::vector<std::int32_t>& ids);

struct RunOptions {
  std::int64_t max_rows_per_chunk = 4096;  // bounds the per-layer scratch memory
  std::int64_t max_sequences_per_chunk = 0;  // 0 = no limit; calibration runs batches of N prompts
  ForwardObserver* observer = nullptr;
  // Called after each layer with the hidden state (for tests and per-layer reports).
  std::function<void(std::int64_t layer, const Tensor& hidden)> after_layer;
  // Progress: called after each layer with (layers done, total layers).
  std::function<void(std::int64_t, std::int64_t)> on_layer_done;
};

// Runs every decoder layer over `tokens`; returns the final residual stream [rows, hidden] (before the norm).
Tensor run_layers(LayerSource& source, const TokenSet& tokens, const RunOptions& options);

// Runs one layer over the rows in chunks of whole sequences (each at most max_rows rows unless one sequence is
// longer by itself).
void run_layer_chunked(const ModelConfig& config, const DecoderLayer& layer, Tensor& hidden,
                       const TokenLayout& layout, std::int64_t max_rows, std::int64_t max_sequences,
                       ForwardObserver* observer);

// Final norm + lm_head for rows [begin, begin + count) of the residual stream: logits F32 [count, vocab].
Tensor compute_logits(const ModelConfig& config, const Tensor& final_norm, const Linear& lm_head,
                      const Tensor& hidden, std::int64_t begin, std::int64_t count);

}  // namespace moeslim::model
