// The file names and fixed JSON values of msModelSlim's output layouts, shared by the scheme table, the
// writers, the reader and `inspect`.
#pragma once

namespace moeslim::formats::msmodelslim {

// W8A8 mixed (v0 API, both the ascendV1 and the MindIE safe_tensor layouts): shards
// "<base>-0000i-of-0000N.safetensors" plus "<base>.safetensors.index.json".
inline constexpr const char* kW8A8ShardBase = "quant_model_weight_w8a8_dynamic";
// W4A8 mixed (v1 API, ascendv1 saver): the same pattern with this base; the description file is
// kAscendV1DescriptionFile.
inline constexpr const char* kW4A8ShardBase = "quant_model_weights";

inline constexpr const char* kAscendV1DescriptionFile = "quant_model_description.json";
inline constexpr const char* kMindIEDescriptionFile = "quant_model_description_w8a8_dynamic.json";

inline constexpr const char* kDescriptionVersion = "1.0.0";
// The value of config.json's "quantize" key in the W8A8 layouts (msModelSlim's Qwen3-MoE hook overrides the
// generic "w8a8").
inline constexpr const char* kW8A8QuantizeValue = "w8a8_dynamic";

}  // namespace moeslim::formats::msmodelslim
