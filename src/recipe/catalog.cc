// The bundled recipes under configs/: listing them, the one-click lookup by (model type, quant type), and where a
// recipe's dataset names point.
#include <algorithm>
#include <cctype>

#include <fmt/core.h>

#include "core/error.h"
#include "recipe/recipe.h"

namespace moeslim::recipe {
namespace {

namespace fs = std::filesystem;

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string relative_name(const fs::path& file, const fs::path& dir) {
  return file.lexically_relative(dir).generic_string();
}

}  // namespace

std::vector<Recipe> bundled_recipes(const fs::path& configs_dir) {
  if (!fs::is_directory(configs_dir)) {
    throw Error(ErrorCode::kNotFound, "the recipe directory does not exist", configs_dir.string());
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(configs_dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  // Sorted paths first, so that the order of equal names (and so every listing) does not depend on the file system.
  std::sort(files.begin(), files.end());
  std::vector<Recipe> recipes;
  for (const auto& f : files) recipes.push_back(load_recipe(f));
  std::stable_sort(recipes.begin(), recipes.end(), [](const Recipe& a, const Recipe& b) { return a.name < b.name; });
  return recipes;
}

Recipe find_bundled_recipe(const fs::path& configs_dir, const std::string& model_type, const std::string& quant_type) {
  std::vector<Recipe> all = bundled_recipes(configs_dir);
  std::vector<const Recipe*> hits;
  std::vector<std::string> available;
  for (const Recipe& r : all) {
    if (r.quant_type.empty()) continue;  // no match block: reachable only through --config
    bool hit = false;
    for (const std::string& mt : r.model_types) {
      available.push_back(fmt::format("{} {} ({})", mt, r.quant_type, relative_name(r.file, configs_dir)));
      hit = hit || (iequals(mt, model_type) && iequals(r.quant_type, quant_type));
    }
    if (hit) hits.push_back(&r);
  }
  if (hits.empty()) {
    std::sort(available.begin(), available.end());
    std::string list;
    for (const auto& a : available) list += "\n  " + a;
    throw Error(ErrorCode::kNotFound,
                fmt::format("no bundled recipe for model type '{}' and quant type '{}'; available:{}", model_type,
                            quant_type, available.empty() ? std::string(" none") : list),
                configs_dir.string(), "match");
  }
  if (hits.size() > 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("both {} and {} match model type '{}' and quant type '{}'; the one-click path needs "
                            "exactly one: remove the match block from one of them",
                            hits[0]->file.string(), hits[1]->file.string(), model_type, quant_type),
                hits[1]->file.string(), "match");
  }
  return *hits[0];
}

fs::path resolve_dataset(const Recipe& recipe, const std::string& name, const std::string& key,
                         const fs::path& data_dir) {
  if (name.empty()) throw Error(ErrorCode::kNotFound, "the dataset name is empty", recipe.file.string(), key);
  const fs::path p(name);
  if (p.is_absolute()) {
    if (fs::exists(p)) return p;
    throw Error(ErrorCode::kNotFound, fmt::format("dataset '{}' does not exist", name), recipe.file.string(), key);
  }
  const fs::path beside = recipe.file.parent_path() / p;
  if (fs::exists(beside)) return beside;
  const fs::path bundled = data_dir / p;
  if (fs::exists(bundled)) return bundled;
  throw Error(ErrorCode::kNotFound,
              fmt::format("dataset '{}' not found: looked for {} (beside the recipe) and {} (bundled data)", name,
                          beside.string(), bundled.string()),
              recipe.file.string(), key);
}

}  // namespace moeslim::recipe
