// Tests name modules by their Hugging Face path, which reads better than a ModuleId literal; module_id() turns
// such a name into the identity the code takes.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "model/module_id.h"

namespace moeslim::testing {

inline model::ModuleId module_id(std::string_view hf_name) {
  const std::optional<model::ModuleId> id = model::parse_hf_module_name(hf_name);
  if (!id) throw std::invalid_argument("not a module name: " + std::string(hf_name));
  return *id;
}

}  // namespace moeslim::testing
