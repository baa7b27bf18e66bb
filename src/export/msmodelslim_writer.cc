#include "export/msmodelslim_writer.h"

#include "core/error.h"
#include "core/log.h"
#include "export/description_file.h"
#include "export/msmodelslim_names.h"
#include "export/output_config.h"
#include "export/w8a8_tensors.h"

namespace moeslim::exporter {
namespace {

// msModelSlim's model-level type for w_bit = a_bit = 8, whatever the mix of static and dynamic layers.
constexpr const char* kModelQuantType = "W8A8";

}  // namespace

MsModelSlimWriter::MsModelSlimWriter(std::filesystem::path out_dir, SaveFormat format, DType float_dtype,
                                     std::uint64_t max_shard_bytes)
    : QuantizedModelWriter(std::move(out_dir), kW8A8ShardBase, float_dtype, max_shard_bytes), format_(format) {}

std::vector<NamedTensor> MsModelSlimWriter::norm_tensors(const quant::NormTensors& norm) const {
  return w8a8_norm_tensors(norm, float_dtype(), format_ == SaveFormat::kMindIE, kModelQuantType);
}

std::vector<NamedTensor> MsModelSlimWriter::linear_tensors(const quant::QuantizedLinear& linear) const {
  return w8a8_linear_tensors(linear, float_dtype());
}

MsModelSlimOutput MsModelSlimWriter::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                            const nlohmann::ordered_json& /*metadata: no place in v0*/) {
  MsModelSlimOutput result;
  result.shards = close_shards();

  const bool mindie = format_ == SaveFormat::kMindIE;
  if (mindie) {
    // safe_tensor layout: no version, and the three trailing keys live in config.json's quantization_config.
    result.description_path = out_dir() / kMindIEDescriptionFile;
    write_description(result.description_path, {{"model_quant_type", kModelQuantType}}, shards().entries(), {});
  } else {
    result.description_path = out_dir() / kAscendV1DescriptionFile;
    write_description(result.description_path,
                      {{"version", kDescriptionVersion}, {"model_quant_type", kModelQuantType}}, shards().entries(),
                      {{"kv_quant_type", nullptr}, {"fa_quant_type", nullptr}, {"group_size", 0}});
  }

  result.side_files = copy_model_side_files(model_dir, out_dir());
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir(), [&](nlohmann::ordered_json& config) {
    add_w8a8_quantize_keys(config, mindie);
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_info("export: {} tensors ({} bytes) in {} shard(s), {} and config.json written to {}",
           result.shards.tensor_count, result.shards.total_size, result.shards.shard_names.size(),
           result.description_path.filename().string(), out_dir().string());
  return result;
}

}  // namespace moeslim::exporter
