// config.json's `quantization_config` for a compressed-tensors checkpoint (docs/compressed-tensors.md §1), made
// from what the pipeline will write for each linear (LinearPlanOf), so that vLLM's scheme selection and
// vLLM-Ascend's find the scheme moeslim wrote for every module:
//   one config group per scheme. The experts' group (or the only one) targets the class name "Linear", which
//     older vLLM and SGLang look up for fused MoE layers; a different attention scheme gets its own group,
//     targeted by a regex that also matches vLLM's fused qkv_proj;
//   `ignore` names every linear left float by its full module name: each layer's router (mlp.gate, which
//     current vLLM would otherwise quantize) and lm_head always;
//   `format` is the groups' one format, or "mixed-precision" with each group carrying its own (a per-group
//     format key is written only then: compressed-tensors before 0.11 refuses it);
//   only the QuantizationArgs keys every compressed-tensors version accepts (no scale_dtype / zp_dtype).
// What the layout cannot hold is refused with kUnsupported naming the module.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/format.h"
#include "model/config.h"
#include "quant/quant_types.h"

namespace moeslim::formats::compressed_tensors {

// How compressed-tensors describes one of moeslim's schemes.
struct CtScheme {
  int weight_bits = 8;
  std::int64_t group_size = 0;         // 0: one scale per output channel
  bool symmetric = true;
  bool int8_token_activations = true;  // dynamic per-token symmetric int8 inputs; false: weight-only
  std::string format;                  // "int-quantized" (one code per I8) or "pack-quantized" (int32 words)

  bool operator==(const CtScheme&) const = default;
};

// The compressed-tensors form of `scheme` for linear `module`; kUnsupported for one the format has no form of
// (static W8A8: its activation offset and m4's bias have no place that vLLM's Qwen3-MoE loads).
CtScheme ct_scheme(quant::QuantScheme scheme, const std::string& module);

// The compressed-tensors version written in `version`: llm-compressor's current one. No reader uses it.
inline constexpr const char* kWrittenVersion = "0.18.0";

// The quantization_config of a model of `config` (its num_hidden_layers: the layers written) whose linears are
// `plan_of`. `version`: the compressed-tensors version written.
nlohmann::ordered_json quantization_config(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                                           const std::string& version = kWrittenVersion);

}  // namespace moeslim::formats::compressed_tensors
