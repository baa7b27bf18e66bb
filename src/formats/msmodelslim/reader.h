// A quantized output directory in one of msModelSlim's layouts as a model::LayerSource, so `eval` runs the
// model as vLLM-Ascend loads it: every linear by its description type (W8A8 → static int8, W8A8_DYNAMIC →
// per-token int8, W4A8_DYNAMIC → int4 weights with per-token int8 activations, FLOAT → float), its tensors
// found by the layout's scheme table, norms with their biases.
//
// What the written files say and how it is used:
//  * config.json: the architecture (a --mindie_format "quantization_config" key is ignored; "quantize" too).
//  * the layout's description file; every described tensor must be in the shards. A linear's type is that
//    of "<module>.weight", and must be a scheme the layout holds.
//  * the shards: through the one "*.safetensors.index.json" in the directory (the base name differs between
//    layouts), or a lone *.safetensors file.
//  * a W8A8 linear's float `.bias` is NOT added: it is already inside quant_bias (§4.6).
//  * W8A8_DYNAMIC weight scales are rounded to the model's dtype (bf16), as vLLM-Ascend's loader does.
//  * norm biases are added after the norm; q_norm/k_norm biases must be zero (msModelSlim writes zeros; the
//    decoder has no per-head bias); a nonzero final-norm bias is folded into lm_head (W·β as its bias).
//  * the router and lm_head run in float32, other FLOAT linears at the requested precision.
// Errors name the file (description, index or shard) and the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "formats/msmodelslim/scheme_table.h"
#include "model/causal_lm.h"

namespace moeslim::formats::msmodelslim {

class QuantizedLayerSource final : public model::LayerSource {
 public:
  // Reads config.json, the description and the shard index, and checks they agree (shards are mapped when
  // first used). layer_count > 0 keeps only the first layer_count layers.
  QuantizedLayerSource(const std::filesystem::path& dir, Layout layout,
                       model::FloatPrecision precision = model::FloatPrecision::kF32, std::int64_t layer_count = 0);
  ~QuantizedLayerSource() override;
  QuantizedLayerSource(const QuantizedLayerSource&) = delete;
  QuantizedLayerSource& operator=(const QuantizedLayerSource&) = delete;

  const model::ModelConfig& config() const override;
  model::DecoderLayer load_layer(std::int64_t layer) override;
  void release_layer(std::int64_t layer) override;
  Tensor embedding() override;
  Tensor final_norm() override;
  std::unique_ptr<model::Linear> lm_head() override;

  // The description's type for a tensor ("W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC", "FLOAT", ...); "" if absent.
  std::string tensor_type(const std::string& name) const;
  const std::filesystem::path& description_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeslim::formats::msmodelslim
