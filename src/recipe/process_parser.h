// Reads a recipe's `process` list (internal to moeslim_recipe; the format is in recipe.h) through the step
// registry (quant/step_registry.h).
#pragma once

#include <yaml-cpp/yaml.h>

#include "io/yaml_fields.h"
#include "recipe/recipe.h"

namespace moeslim::recipe::detail {

using io::yaml::describe;
using io::yaml::MapReader;
using io::yaml::Source;

// Fills recipe.steps. recipe.defaults must already be set: which methods and schemes are allowed depends on it.
void parse_process(const Source& src, const YAML::Node& node, Recipe& recipe);

}  // namespace moeslim::recipe::detail
