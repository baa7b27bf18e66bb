// The non-weight files of an output directory: config.json (the input's, edited for the layout) and the
// input's side files (tokenizer, generation config, chat template, custom code).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moeslim::formats::msmodelslim {

// Copies `model_dir`'s side files (io::copy_side_files: *.json, *.py, *.txt, *.jinja, *.model; never weights
// or shard indexes) into `out_dir`, except config.json, which the writers rewrite. Returns the copied names.
std::vector<std::string> copy_model_side_files(const std::filesystem::path& model_dir,
                                               const std::filesystem::path& out_dir);

// Reads `model_dir`/config.json keeping its key order, lets `edit` change it, and writes it to
// `out_dir`/config.json as Python's json.dump(indent=4) does (4-space indent, ASCII-escaped, no trailing
// newline). kNotFound without an input config.json, kFormat if it is not a JSON object.
void write_edited_config(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                         const std::function<void(nlohmann::ordered_json&)>& edit);

// When only the first `layer_count_written` decoder layers were written (0 < it < the input's
// num_hidden_layers), records that count so the output loads as a model (docs/msmodelslim-format.md §6: moeslim's deliberate
// departure from msModelSlim, which keeps the input's count). 0 means all layers: nothing changes.
// kInvalidArgument if it is negative or more than the input has; kFormat (naming `config_file`) if the
// input's num_hidden_layers is not an integer.
void set_written_layer_count(nlohmann::ordered_json& config, std::int64_t layer_count_written,
                             const std::string& config_file);

// The W8A8 layouts' config edits (docs/msmodelslim-format.md §1, §4): "quantize": "w8a8_dynamic" and, in the MindIE layout,
// "quantization_config": {"kv_quant_type": null, "fa_quant_type": null, "group_size": 0} (replacing the
// input's). The ascendV1 layout removes any input "quantization_config": vLLM-Ascend takes that key, when
// present, as the quantization description instead of quant_model_description.json, so an input's own
// settings would mislead it about these weights. Keys already present keep their place, new ones go last
// (Python dict semantics).
void add_w8a8_quantize_keys(nlohmann::ordered_json& config, bool mindie_format);

// The W4A8 layout's config edit (docs/msmodelslim-format.md §5): msModelSlim's v1 saver removes any "quantization_config" key (an
// input's own quantization settings would mislead loaders about these weights) and adds no "quantize" key.
void remove_quantization_config(nlohmann::ordered_json& config);

}  // namespace moeslim::formats::msmodelslim
