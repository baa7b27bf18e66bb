#include "export/msmodelslim_v1_writer.h"

#include "core/error.h"
#include "core/log.h"
#include "export/description_file.h"
#include "export/msmodelslim_names.h"
#include "export/output_config.h"
#include "export/w4a8_tensors.h"

namespace moeslim::exporter {
namespace {

// The v1 saver's model-level type is the highest-priority *visible* one: W4A8_DYNAMIC is deliberately hidden
// from this field, so a W4A8 model (int8 attention, int4 experts) says W8A8_DYNAMIC.
constexpr const char* kModelQuantType = "W8A8_DYNAMIC";

}  // namespace

MsModelSlimV1Writer::MsModelSlimV1Writer(std::filesystem::path out_dir, DType float_dtype,
                                         std::uint64_t max_shard_bytes)
    : QuantizedModelWriter(std::move(out_dir), kW4A8ShardBase, float_dtype, max_shard_bytes) {}

std::vector<NamedTensor> MsModelSlimV1Writer::norm_tensors(const quant::NormTensors& norm) const {
  return w4a8_norm_tensors(norm, float_dtype());
}

std::vector<NamedTensor> MsModelSlimV1Writer::linear_tensors(const quant::QuantizedLinear& linear) const {
  return linear.scheme == quant::QuantScheme::kFloat ? float_linear_tensors(linear, float_dtype())
                                                     : w4a8_linear_tensors(linear);
}

MsModelSlimOutput MsModelSlimV1Writer::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                              const nlohmann::ordered_json& metadata) {
  if (!metadata.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, "description metadata must be a JSON object, not " + metadata.dump(),
                out_dir().string(), "metadata");
  }
  MsModelSlimOutput result;
  result.shards = close_shards();

  // v1 puts every header key after the tensor entries, in this order.
  result.description_path = out_dir() / kAscendV1DescriptionFile;
  write_description(result.description_path, {}, shards().entries(),
                    {{"version", kDescriptionVersion},
                     {"model_quant_type", kModelQuantType},
                     {"metadata", metadata},
                     {"group_size", 0},
                     {"optional", nlohmann::ordered_json::object()}});

  result.side_files = copy_model_side_files(model_dir, out_dir());
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir(), [&](nlohmann::ordered_json& config) {
    remove_quantization_config(config);
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_info("export: {} tensors ({} bytes) in {} shard(s), {} and config.json written to {}",
           result.shards.tensor_count, result.shards.total_size, result.shards.shard_names.size(),
           result.description_path.filename().string(), out_dir().string());
  return result;
}

}  // namespace moeslim::exporter
