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
    : out_dir_(std::move(out_dir)),
      format_(format),
      float_dtype_(float_dtype),
      tensors_(out_dir_, kW8A8ShardBase, max_shard_bytes) {
  if (float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    throw Error(ErrorCode::kInvalidArgument,
                "the output float dtype must be BF16 or F16, not " + std::string(dtype_name(float_dtype)),
                out_dir_.string());
  }
}

void MsModelSlimWriter::add_all(const std::vector<NamedTensor>& tensors) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "tensor added after finish()", out_dir_.string());
  for (const NamedTensor& t : tensors) tensors_.add(t.name, t.tensor, t.type);
}

void MsModelSlimWriter::add_float(const std::string& tensor_name, const Tensor& tensor) {
  try {
    add_all({float_named_tensor(tensor_name, tensor, float_dtype_)});
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void MsModelSlimWriter::add_norm(const quant::NormTensors& norm) {
  try {
    add_all(w8a8_norm_tensors(norm, float_dtype_, format_ == SaveFormat::kMindIE, kModelQuantType));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void MsModelSlimWriter::add_linear(const quant::QuantizedLinear& linear) {
  try {
    add_all(w8a8_linear_tensors(linear, float_dtype_));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

MsModelSlimOutput MsModelSlimWriter::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                            const nlohmann::ordered_json& /*metadata: no place in v0*/) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "finish() called twice", out_dir_.string());
  finished_ = true;
  MsModelSlimOutput result;
  result.shards = tensors_.finish();

  const bool mindie = format_ == SaveFormat::kMindIE;
  if (mindie) {
    // safe_tensor layout: no version, and the three trailing keys live in config.json's quantization_config.
    result.description_path = out_dir_ / kMindIEDescriptionFile;
    write_description(result.description_path, {{"model_quant_type", kModelQuantType}}, tensors_.entries(), {});
  } else {
    result.description_path = out_dir_ / kAscendV1DescriptionFile;
    write_description(result.description_path,
                      {{"version", kDescriptionVersion}, {"model_quant_type", kModelQuantType}}, tensors_.entries(),
                      {{"kv_quant_type", nullptr}, {"fa_quant_type", nullptr}, {"group_size", 0}});
  }

  result.side_files = copy_model_side_files(model_dir, out_dir_);
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir_, [&](nlohmann::ordered_json& config) {
    add_w8a8_quantize_keys(config, mindie);
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_info("export: {} tensors ({} bytes) in {} shard(s), {} and config.json written to {}",
           result.shards.tensor_count, result.shards.total_size, result.shards.shard_names.size(),
           result.description_path.filename().string(), out_dir_.string());
  return result;
}

}  // namespace moeslim::exporter
