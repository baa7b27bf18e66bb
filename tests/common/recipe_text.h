// A recipe made from its YAML text, for tests that write their own: the text goes to `dir`/recipe.yaml, which
// errors then name, and is loaded as `moeslim quant --config` loads a file.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "recipe/recipe.h"

namespace moeslim::testing {

inline recipe::Recipe load_recipe_text(const std::filesystem::path& dir, const std::string& yaml) {
  const std::filesystem::path file = dir / "recipe.yaml";
  std::ofstream(file) << yaml;
  return recipe::load_recipe(file);
}

}  // namespace moeslim::testing
