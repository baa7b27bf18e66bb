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
    : out_dir_(std::move(out_dir)), float_dtype_(float_dtype), tensors_(out_dir_, kW4A8ShardBase, max_shard_bytes) {
  if (float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    throw Error(ErrorCode::kInvalidArgument,
                "the output float dtype must be BF16 or F16, not " + std::string(dtype_name(float_dtype)),
                out_dir_.string());
  }
}

void MsModelSlimV1Writer::add_all(const std::vector<NamedTensor>& tensors) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "tensor added after finish()", out_dir_.string());
  for (const NamedTensor& t : tensors) tensors_.add(t.name, t.tensor, t.type);
}

void MsModelSlimV1Writer::add_float(const std::string& tensor_name, const Tensor& tensor) {
  try {
    add_all({float_named_tensor(tensor_name, tensor, float_dtype_)});
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void MsModelSlimV1Writer::add_norm(const quant::NormTensors& norm) {
  try {
    add_all(w4a8_norm_tensors(norm, float_dtype_));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void MsModelSlimV1Writer::add_linear(const quant::QuantizedLinear& linear) {
  try {
    add_all(linear.scheme == quant::QuantScheme::kFloat ? float_linear_tensors(linear, float_dtype_)
                                                        : w4a8_linear_tensors(linear));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

MsModelSlimOutput MsModelSlimV1Writer::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                              const nlohmann::ordered_json& metadata) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "finish() called twice", out_dir_.string());
  if (!metadata.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, "description metadata must be a JSON object, not " + metadata.dump(),
                out_dir_.string(), "metadata");
  }
  finished_ = true;
  MsModelSlimOutput result;
  result.shards = tensors_.finish();

  // v1 puts every header key after the tensor entries, in this order.
  result.description_path = out_dir_ / kAscendV1DescriptionFile;
  write_description(result.description_path, {}, tensors_.entries(),
                    {{"version", kDescriptionVersion},
                     {"model_quant_type", kModelQuantType},
                     {"metadata", metadata},
                     {"group_size", 0},
                     {"optional", nlohmann::ordered_json::object()}});

  result.side_files = copy_model_side_files(model_dir, out_dir_);
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir_, [&](nlohmann::ordered_json& config) {
    remove_quantization_config(config);
    set_written_layer_count(config, layer_count_written, config_file);
  });
  log_info("export: {} tensors ({} bytes) in {} shard(s), {} and config.json written to {}",
           result.shards.tensor_count, result.shards.total_size, result.shards.shard_names.size(),
           result.description_path.filename().string(), out_dir_.string());
  return result;
}

}  // namespace moeslim::exporter
