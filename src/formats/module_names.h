// The one place a module's identity becomes a tensor name. Every tensor name the formats write or look for
// derives from the module through these functions, so that changing how the pipeline identifies a module
// (today the Hugging Face module path in QuantizedLinear::name / NormTensors::name) changes only
// module_path().
#pragma once

#include <string>
#include <string_view>

#include "quant/quant_types.h"

namespace moeslim::formats {

// The Hugging Face module path, e.g. "model.layers.0.self_attn.q_proj".
inline const std::string& module_path(const quant::QuantizedLinear& linear) { return linear.name; }
inline const std::string& module_path(const quant::NormTensors& norm) { return norm.name; }

// "<module>.<part>", e.g. "model.layers.0.self_attn.q_proj.weight_scale".
inline std::string tensor_name(const std::string& module, std::string_view part) {
  std::string name = module;
  name += '.';
  name += part;
  return name;
}

}  // namespace moeslim::formats
