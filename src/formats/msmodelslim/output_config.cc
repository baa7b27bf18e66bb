#include "formats/msmodelslim/output_config.h"

#include "formats/msmodelslim/names.h"

namespace moeslim::formats::msmodelslim {

void add_w8a8_quantize_keys(nlohmann::ordered_json& config, bool mindie_format) {
  config["quantize"] = kW8A8QuantizeValue;
  if (mindie_format) {
    config["quantization_config"] =
        nlohmann::ordered_json{{"kv_quant_type", nullptr}, {"fa_quant_type", nullptr}, {"group_size", 0}};
  } else {
    remove_quantization_config(config);
  }
}

void remove_quantization_config(nlohmann::ordered_json& config) { config.erase("quantization_config"); }

}  // namespace moeslim::formats::msmodelslim
