#include "formats/msmodelslim/v0_writer.h"

#include "core/error.h"
#include "formats/msmodelslim/description_file.h"
#include "formats/msmodelslim/names.h"
#include "formats/hf_directory.h"
#include "formats/msmodelslim/output_config.h"
#include "formats/msmodelslim/w8a8_tensors.h"

namespace moeslim::formats::msmodelslim {
namespace {

const LayoutRules& v0_rules(Layout layout, const std::filesystem::path& out_dir) {
  if (layout != Layout::kAscendV1 && layout != Layout::kMindIE) {
    throw Error(ErrorCode::kInvalidArgument,
                "the W8A8 writer writes the ascendV1 and mindie layouts, not " + std::string(layout_rules(layout).name),
                out_dir.string());
  }
  return layout_rules(layout);
}

}  // namespace

V0Writer::V0Writer(std::filesystem::path out_dir, Layout layout, DType float_dtype, std::uint64_t max_shard_bytes)
    : LayoutWriter(out_dir, v0_rules(layout, out_dir), float_dtype, max_shard_bytes) {}

std::vector<NamedTensor> V0Writer::norm_tensors(const quant::NormTensors& norm) const {
  return w8a8_norm_tensors(norm, float_dtype(), mindie(), std::string(rules().model_quant_type));
}

std::vector<NamedTensor> V0Writer::linear_tensors(const quant::QuantizedLinear& linear) const {
  return w8a8_linear_tensors(linear, float_dtype());
}

WrittenOutput V0Writer::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                               const nlohmann::ordered_json& /*metadata: no place in v0*/) {
  WrittenOutput result;
  result.shards = close_shards();

  const std::string model_quant_type(rules().model_quant_type);
  result.description_path = out_dir() / rules().description_file;
  if (mindie()) {
    // safe_tensor layout: no version, and the three trailing keys live in config.json's quantization_config.
    write_description(result.description_path, {{"model_quant_type", model_quant_type}}, shards().entries(), {});
  } else {
    write_description(result.description_path,
                      {{"version", kDescriptionVersion}, {"model_quant_type", model_quant_type}}, shards().entries(),
                      {{"kv_quant_type", nullptr}, {"fa_quant_type", nullptr}, {"group_size", 0}});
  }

  result.side_files = copy_model_side_files(model_dir, out_dir());
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir(), 4, [&](nlohmann::ordered_json& config) {
    add_w8a8_quantize_keys(config, mindie());
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_written(result);
  return result;
}

}  // namespace moeslim::formats::msmodelslim
