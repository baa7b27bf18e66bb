// A compressed-tensors checkpoint as a model::LayerSource, so `eval` runs it as vLLM's int schemes do
// (docs/compressed-tensors.md §3): each linear's scheme found as vLLM finds it (ignore first, then a target
// equal to or matching the module name, then the class name "Linear"), then
//   int-quantized 8-bit channel weights with dynamic per-token int8 inputs: W8A8_DYNAMIC's integer arithmetic;
//   int-quantized 4-bit channel weights (one code per I8) with the same inputs: W4A8_DYNAMIC's;
//   ignored linears, the embedding, norms and lm_head: float, the router and lm_head in float32.
// Scales are read as float32, what vLLM's parameters hold. Anything else in quantization_config (another
// format, group or asymmetric weights, static or missing input quantization) is kUnsupported naming config.json
// and the key; tensors are checked for name, dtype and shape, codes for their range. Errors name the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "model/causal_lm.h"

namespace moeslim::formats::compressed_tensors {

class CtLayerSource final : public model::LayerSource {
 public:
  // layer_count > 0 keeps only the first layer_count layers.
  CtLayerSource(const std::filesystem::path& dir, model::FloatPrecision precision = model::FloatPrecision::kF32,
                std::int64_t layer_count = 0);
  ~CtLayerSource() override;
  CtLayerSource(const CtLayerSource&) = delete;
  CtLayerSource& operator=(const CtLayerSource&) = delete;

  const model::ModelConfig& config() const override;
  model::DecoderLayer load_layer(std::int64_t layer) override;
  void release_layer(std::int64_t layer) override;
  Tensor embedding() override;
  Tensor final_norm() override;
  std::unique_ptr<model::Linear> lm_head() override;

  // The scheme the checkpoint gives `module` ("W8A8_DYNAMIC", "W4A8_DYNAMIC" or "FLOAT").
  std::string scheme_name(const std::string& module) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether `dir`'s config.json says compressed-tensors (quantization_config.quant_method); false when unreadable.
bool holds_compressed_tensors(const std::filesystem::path& dir);

}  // namespace moeslim::formats::compressed_tensors
