#include "formats/msmodelslim/v1_writer.h"

#include "core/error.h"
#include "formats/msmodelslim/description_file.h"
#include "formats/msmodelslim/names.h"
#include "formats/hf_directory.h"
#include "formats/msmodelslim/output_config.h"
#include "formats/msmodelslim/w4a8_tensors.h"

namespace moeslim::formats::msmodelslim {

V1Writer::V1Writer(std::filesystem::path out_dir, DType float_dtype, std::uint64_t max_shard_bytes)
    : LayoutWriter(std::move(out_dir), layout_rules(Layout::kAscendV1V1), float_dtype, max_shard_bytes) {}

std::vector<NamedTensor> V1Writer::norm_tensors(const quant::NormTensors& norm) const {
  return w4a8_norm_tensors(norm, float_dtype());
}

std::vector<NamedTensor> V1Writer::linear_tensors(const quant::QuantizedLinear& linear) const {
  return linear.scheme == quant::QuantScheme::kFloat ? float_linear_tensors(linear, float_dtype())
                                                     : w4a8_linear_tensors(linear);
}

WrittenOutput V1Writer::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                               const nlohmann::ordered_json& metadata) {
  if (!metadata.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, "description metadata must be a JSON object, not " + metadata.dump(),
                out_dir().string(), "metadata");
  }
  WrittenOutput result;
  result.shards = close_shards();

  // v1 puts every header key after the tensor entries, in this order.
  result.description_path = out_dir() / rules().description_file;
  write_description(result.description_path, {}, shards().entries(),
                    {{"version", kDescriptionVersion},
                     {"model_quant_type", std::string(rules().model_quant_type)},
                     {"metadata", metadata},
                     {"group_size", 0},
                     {"optional", nlohmann::ordered_json::object()}});

  result.side_files = copy_model_side_files(model_dir, out_dir());
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir(), 4, [&](nlohmann::ordered_json& config) {
    remove_quantization_config(config);
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_written(result);
  return result;
}

}  // namespace moeslim::formats::msmodelslim
