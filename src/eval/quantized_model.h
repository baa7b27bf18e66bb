// A quantized output directory (docs/msmodelslim-format.md: the W8A8 ascendV1 and
// --mindie_format layouts, and the W4A8 one) as a model::LayerSource, so `eval` runs the model exactly as
// written: every linear by its description type (W8A8 → static int8, W8A8_DYNAMIC → per-token int8,
// W4A8_DYNAMIC → int4 weights with per-token int8 activations, FLOAT → float), norms with their biases.
//
// What the written files say and how it is used:
//  * config.json: the architecture (a --mindie_format "quantization_config" key is ignored; "quantize" too).
//  * the description file: quant_model_description.json, else quant_model_description_w8a8_dynamic.json;
//    every described tensor must be in the shards. A linear's type is that of "<module>.weight".
//  * the shards: through the one "*.safetensors.index.json" in the directory (the base name differs between
//    formats), or a lone *.safetensors file.
//  * a W8A8 linear's float `.bias` is NOT added: it is already inside quant_bias (docs/msmodelslim-algorithms.md §4.6).
//  * norm biases are added after the norm; q_norm/k_norm biases must be zero (msModelSlim writes zeros; the
//    decoder has no per-head bias); a nonzero final-norm bias is folded into lm_head (W·β as its bias).
//  * the router and lm_head run in float32, other FLOAT linears at the requested precision.
// Errors name the file (description, index or shard) and the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "model/causal_lm.h"

namespace moeslim::eval {

inline constexpr const char* kDescriptionFile = "quant_model_description.json";
inline constexpr const char* kMindieDescriptionFile = "quant_model_description_w8a8_dynamic.json";

// True when `dir` holds a quantization description file (either name above).
bool is_quantized_dir(const std::filesystem::path& dir);

class QuantizedLayerSource final : public model::LayerSource {
 public:
  // Reads config.json, the description and the shard index, and checks they agree (shards are mapped when
  // first used). layer_count > 0 keeps only the first layer_count layers.
  explicit QuantizedLayerSource(const std::filesystem::path& dir,
                                model::FloatPrecision precision = model::FloatPrecision::kF32,
                                std::int64_t layer_count = 0);
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

}  // namespace moeslim::eval
