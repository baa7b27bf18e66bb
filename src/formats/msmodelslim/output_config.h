// msModelSlim's edits of config.json (the rest of an output directory's non-weight files: formats/hf_directory.h).
#pragma once

#include <nlohmann/json.hpp>

namespace moeslim::formats::msmodelslim {

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
