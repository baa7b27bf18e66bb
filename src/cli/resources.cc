#include "cli/resources.h"

#include <cstdlib>

#include "core/error.h"

namespace moeslim::cli {

std::filesystem::path resource_dir() {
  if (const char* home = std::getenv("MOESLIM_HOME"); home != nullptr && *home != '\0') return home;
  return MOESLIM_DEFAULT_HOME;
}

std::filesystem::path resource_path(const std::string& relative) {
  const auto path = resource_dir() / relative;
  if (!std::filesystem::exists(path)) {
    throw Error(ErrorCode::kNotFound,
                "bundled resource is missing; set MOESLIM_HOME to the moeslim source tree or pass the path "
                "explicitly",
                path.string());
  }
  return path;
}

std::filesystem::path default_tokenizer_for_preset(const std::string& preset) {
  return preset == "tiny" ? resource_path("models/tiny-qwen3-moe")
                          : resource_path("tests/data/tokenizers/qwen3/tokenizer.json");
}

}  // namespace moeslim::cli
