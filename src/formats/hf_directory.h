// What every output format writes the same way into a Hugging Face-style directory: config.json (the input's,
// edited by the format) and the input's side files (tokenizer, generation config, chat template, custom code).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moeslim::formats {

inline constexpr const char* kConfigFile = "config.json";

// Copies `model_dir`'s side files (io::copy_side_files: *.json, *.py, *.txt, *.jinja, *.model; never weights
// or shard indexes) into `out_dir`, except config.json, which the writers rewrite. Returns the copied names.
std::vector<std::string> copy_model_side_files(const std::filesystem::path& model_dir,
                                               const std::filesystem::path& out_dir);

// Reads `model_dir`/config.json keeping its key order, lets `edit` change it, and writes it to
// `out_dir`/config.json as Python's json.dump(indent=`indent`) does (ASCII-escaped, no trailing newline).
// kNotFound without an input config.json, kFormat if it is not a JSON object.
void write_edited_config(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir, int indent,
                         const std::function<void(nlohmann::ordered_json&)>& edit);

// When only the first `layer_count_written` decoder layers were written (0 < it < the input's
// num_hidden_layers), records that count so the output loads as a model (moeslim's deliberate departure from
// msModelSlim, which keeps the input's count: docs/msmodelslim-format.md §6). 0 means all layers: nothing
// changes. kInvalidArgument if it is negative or more than the input has; kFormat (naming `config_file`) if the
// input's num_hidden_layers is not an integer.
void set_written_layer_count(nlohmann::ordered_json& config, std::int64_t layer_count_written,
                             const std::string& config_file);

}  // namespace moeslim::formats
