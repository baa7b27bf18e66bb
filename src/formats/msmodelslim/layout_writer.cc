#include "formats/msmodelslim/layout_writer.h"

#include "core/error.h"
#include "core/log.h"
#include "formats/msmodelslim/w8a8_tensors.h"

namespace moeslim::formats::msmodelslim {

LayoutWriter::LayoutWriter(std::filesystem::path out_dir, const LayoutRules& rules, DType float_dtype,
                           std::uint64_t max_shard_bytes)
    : out_dir_(std::move(out_dir)),
      rules_(rules),
      float_dtype_(float_dtype),
      tensors_(out_dir_, std::string(rules.shard_base), max_shard_bytes) {
  if (float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    throw Error(ErrorCode::kInvalidArgument,
                "the output float dtype must be BF16 or F16, not " + std::string(dtype_name(float_dtype)),
                out_dir_.string());
  }
}

void LayoutWriter::add_all(const std::vector<NamedTensor>& tensors) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "tensor added after finish()", out_dir_.string());
  for (const NamedTensor& t : tensors) tensors_.add(t.name, t.tensor, t.type);
}

void LayoutWriter::add_float(const std::string& tensor_name, const Tensor& tensor) {
  try {
    add_all({float_named_tensor(tensor_name, tensor, float_dtype_)});
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void LayoutWriter::add_norm(const quant::NormTensors& norm) {
  try {
    add_all(norm_tensors(norm));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void LayoutWriter::add_linear(const quant::QuantizedLinear& linear) {
  try {
    add_all(linear_tensors(linear));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void LayoutWriter::plan(std::vector<io::PlannedTensor> tensors) {
  try {
    tensors_.plan(std::move(tensors));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

io::ShardedWriteSummary LayoutWriter::close_shards() {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "finish() called twice", out_dir_.string());
  finished_ = true;
  return tensors_.finish();
}

void LayoutWriter::log_written(const WrittenOutput& written) const {
  log_info("export: {} tensors ({} bytes) in {} shard(s), {} and config.json written to {}",
           written.shards.tensor_count, written.shards.total_size, written.shards.shard_names.size(),
           written.description_path.filename().string(), out_dir_.string());
}

}  // namespace moeslim::formats::msmodelslim
