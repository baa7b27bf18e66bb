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
//   only the QuantizationArgs keys every compressed-tensors version accepts (no scale_dtype / zp_dtype);
//   with W4A16 experts, a top-level `group_size`: vLLM-Ascend's W4A16 MoE method reads the group size there
//     (default 32), not from the group's arguments; compressed-tensors and vLLM ignore it.
// What the layout cannot hold is refused with kUnsupported naming the module.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

// The compressed-tensors form of `scheme` (on `grid`, W4A16's) for linear `module`; kUnsupported for one the
// format has no form of (static W8A8: its activation offset and m4's bias have no place that vLLM's Qwen3-MoE
// loads).
CtScheme ct_scheme(quant::QuantScheme scheme, const quant::WeightGrid& grid, const std::string& module);

// One stored tensor of a quantized linear: its name after the module's ("weight_packed"), dtype and shape.
struct CtTensor {
  std::string suffix;
  DType dtype;
  Shape shape;
};

// The tensors a linear of scheme `s` with an [out, in] weight is stored as, in the order written (§2.2, §2.3):
// int-quantized: weight I8 [out, in], weight_scale [out, 1]; pack-quantized: weight_packed I32 [out, in/8],
// weight_scale [out, groups], weight_shape I64 [2], and weight_zero_point I32 [ceil(out/8), groups] when
// asymmetric. Scales in `float_dtype`. kUnsupported naming `module` when the group size does not divide `in`
// or `in` is not a multiple of 8 (vLLM's packed parameters).
std::vector<CtTensor> ct_linear_tensors(const CtScheme& s, std::int64_t out, std::int64_t in, DType float_dtype,
                                        const std::string& module);

// The compressed-tensors version written in `version`: llm-compressor's current one. No reader uses it.
inline constexpr const char* kWrittenVersion = "0.18.0";

// The quantization_config of a model of `config` (its num_hidden_layers: the layers written) whose linears are
// `plan_of`. `version`: the compressed-tensors version written.
nlohmann::ordered_json quantization_config(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                                           const std::string& version = kWrittenVersion);

}  // namespace moeslim::formats::compressed_tensors
