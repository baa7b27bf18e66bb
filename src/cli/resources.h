// Files moeslim ships (calibration sets, tokenizers, the tiny model), found relative to the installation.
#pragma once

#include <filesystem>
#include <string>

namespace moeslim::cli {

// The project's resource root: $MOESLIM_HOME if set, else the source tree moeslim was built from.
std::filesystem::path resource_dir();
// A shipped file; kNotFound (naming MOESLIM_HOME) if it is not there.
std::filesystem::path resource_path(const std::string& relative);
// The tokenizer bundled for a synth preset's vocabulary.
std::filesystem::path default_tokenizer_for_preset(const std::string& preset);

}  // namespace moeslim::cli
