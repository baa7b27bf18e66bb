// The one place a format turns a module's identity (model::ModuleId) into a tensor name. Every tensor name the
// formats write or look for derives from the module through these functions.
#pragma once

#include <string>
#include <string_view>

#include "quant/quant_types.h"

namespace moeslim::formats {

// The Hugging Face module path, e.g. "model.layers.0.self_attn.q_proj": msModelSlim's layouts name a quantized
// module's tensors after the module they replace.
inline std::string module_path(const quant::QuantizedLinear& linear) { return model::hf_module_name(linear.module); }
inline std::string module_path(const quant::NormTensors& norm) { return model::hf_module_name(norm.module); }

// "<module>.<part>", e.g. "model.layers.0.self_attn.q_proj.weight_scale".
inline std::string tensor_name(const std::string& module, std::string_view part) {
  std::string name = module;
  name += '.';
  name += part;
  return name;
}

}  // namespace moeslim::formats
