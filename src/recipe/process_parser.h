// Reads a recipe's `process` list (internal to moeslim_recipe; the format is in recipe.h).
#pragma once

#include <yaml-cpp/yaml.h>

#include "recipe/recipe.h"
#include "recipe/yaml_fields.h"

namespace moeslim::recipe::detail {

// Fills recipe.rotate, recipe.smooth and recipe.groups. recipe.api must already be set: which methods and schemes
// are allowed depends on it.
void parse_process(const Source& src, const YAML::Node& node, Recipe& recipe);

}  // namespace moeslim::recipe::detail
