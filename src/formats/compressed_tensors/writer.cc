#include "formats/compressed_tensors/writer.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "formats/compressed_tensors/int4_words.h"
#include "formats/compressed_tensors/quantization_config.h"
#include "formats/float_tensors.h"
#include "formats/hf_directory.h"
#include "formats/module_names.h"
#include "model/config.h"

namespace moeslim::formats::compressed_tensors {
namespace {

[[noreturn]] void unsupported(const std::string& tensor, const std::string& why) {
  throw Error(ErrorCode::kUnsupported, why, {}, tensor);
}

// An asymmetric W4A16 linear's zero points (F32 [out, groups], integers in [−8, 7]) packed eight rows a word.
Tensor packed_zero_points(const quant::QuantizedLinear& linear, const Shape& shape) {
  const Tensor& z = linear.weight_zero_point;
  const std::string name = tensor_name(module_path(linear), "weight_zero_point");
  if (z.dtype() != DType::kF32 || z.numel() != static_cast<std::size_t>(shape_numel(shape))) {
    throw Error(ErrorCode::kInternal, "zero points must be F32 " + shape_to_string(shape), {}, name);
  }
  Tensor codes = Tensor::zeros(DType::kI8, shape);
  const float* src = z.data<float>();
  for (std::size_t i = 0; i < z.numel(); ++i) {
    if (!(src[i] >= -8.0f && src[i] <= 7.0f && src[i] == std::nearbyint(src[i]))) {
      throw Error(ErrorCode::kInternal, fmt::format("zero point {} is not an int4 integer", src[i]), {}, name);
    }
    codes.mutable_data<std::int8_t>()[i] = static_cast<std::int8_t>(src[i]);
  }
  return pack_int4_rows_to_words(codes);
}

}  // namespace

CtWriter::CtWriter(std::filesystem::path out_dir, DType float_dtype, std::uint64_t max_shard_bytes)
    : out_dir_(std::move(out_dir)), float_dtype_(float_dtype), shards_(out_dir_, "model", max_shard_bytes) {
  if (float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    throw Error(ErrorCode::kInvalidArgument,
                "the output float dtype must be BF16 or F16, not " + std::string(dtype_name(float_dtype)),
                out_dir_.string());
  }
}

void CtWriter::add(const std::string& name, const Tensor& tensor) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "tensor added after finish()", out_dir_.string(), name);
  try {
    shards_.add(name, tensor);
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void CtWriter::plan(std::vector<io::PlannedTensor> tensors) {
  try {
    shards_.plan(std::move(tensors));
  } catch (const Error& e) {
    rethrow_with_file(e, out_dir_.string());
  }
}

void CtWriter::add_float(const std::string& tensor_name, const Tensor& tensor) {
  add(tensor_name, to_float_dtype(tensor, float_dtype_));
}

void CtWriter::add_norm(const quant::NormTensors& norm) {
  const std::string module = module_path(norm);
  // m4 gives every norm a bias; msModelSlim's norms that carry none write zeros, which need no tensor here.
  if (!norm.bias.empty() && !all_zero(norm.bias)) {
    unsupported(tensor_name(module, "bias"),
                "a norm with a bias (m4's NormBias) has no place in vLLM's Qwen3-MoE; the compressed-tensors format "
                "takes recipes that smooth without a shift (flex_smooth)");
  }
  add(tensor_name(module, "weight"), to_float_dtype(norm.weight, float_dtype_));
}

void CtWriter::add_linear(const quant::QuantizedLinear& linear) {
  const std::string module = module_path(linear);
  if (!linear.bias.empty()) {
    unsupported(tensor_name(module, "bias"),
                "a linear with a bias (m4's W·shift on q/k/v_proj) has no place in vLLM's Qwen3-MoE; the "
                "compressed-tensors format takes recipes that smooth without a shift (flex_smooth)");
  }
  if (linear.scheme == quant::QuantScheme::kFloat) {
    add(tensor_name(module, "weight"), to_float_dtype(linear.weight, float_dtype_));
    return;
  }
  const CtScheme scheme = ct_scheme(linear.scheme, linear.grid, module);  // refuses one with no form here
  const Tensor& w = linear.weight;
  if (w.dtype() != DType::kI8 || w.rank() != 2) {
    throw Error(ErrorCode::kInternal, "quantized weight must be I8 [out, in], got " + shape_to_string(w.shape()), {},
                tensor_name(module, "weight"));
  }
  const std::int64_t out = w.dim(0), in = w.dim(1);
  const std::vector<CtTensor> layout = ct_linear_tensors(scheme, out, in, float_dtype_, module);
  const std::string scale_name = tensor_name(module, "weight_scale");
  const Shape& scale_shape = layout[1].shape;  // [out, 1] or [out, groups]
  if (linear.weight_scale.numel() != static_cast<std::size_t>(shape_numel(scale_shape))) {
    throw Error(ErrorCode::kInternal, fmt::format("{} scales where the layout has {}", linear.weight_scale.numel(),
                                                  shape_to_string(scale_shape)),
                {}, scale_name);
  }
  if (const auto i = first_inexact_element(linear.weight_scale, float_dtype_)) {
    throw Error(ErrorCode::kInternal,
                fmt::format("scale {} is not exactly representable in {}: the codes were computed against the "
                            "scale as written",
                            *i, dtype_name(float_dtype_)),
                {}, scale_name);
  }
  const Tensor scale = to_float_dtype(linear.weight_scale, float_dtype_).reshaped(scale_shape);
  if (scheme.format == "int-quantized") {
    add(tensor_name(module, "weight"), w);
    add(scale_name, scale);
  } else {
    add(tensor_name(module, "weight_packed"), pack_int4_columns(w));
    add(scale_name, scale);
    Tensor shape = Tensor::zeros(DType::kI64, {2});
    shape.mutable_data<std::int64_t>()[0] = out;
    shape.mutable_data<std::int64_t>()[1] = in;
    add(tensor_name(module, "weight_shape"), shape);
    if (!scheme.symmetric) add(tensor_name(module, "weight_zero_point"), packed_zero_points(linear, scale_shape));
  }
  written_[module] = {linear.scheme, linear.grid, false};
}

WrittenOutput CtWriter::finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                               const nlohmann::ordered_json& /*metadata*/) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "finish() called twice", out_dir_.string());
  finished_ = true;
  WrittenOutput result;
  result.shards = shards_.finish();
  model::ModelConfig config = model::ModelConfig::load(model_dir);
  if (layer_count_written > 0) config.num_hidden_layers = layer_count_written;
  const nlohmann::ordered_json quantization = quantization_config(config, [&](const std::string& module) {
    const auto it = written_.find(module);
    return it == written_.end() ? LinearPlan{} : it->second;
  });
  result.side_files = copy_model_side_files(model_dir, out_dir_);
  const std::string config_file = (model_dir / kConfigFile).string();
  write_edited_config(model_dir, out_dir_, 2, [&](nlohmann::ordered_json& c) {
    set_written_layer_count(c, layer_count_written, config_file);
    c["quantization_config"] = quantization;
  });
  result.description_path = out_dir_ / kConfigFile;
  log_info("export: {} tensors ({} bytes) in {} shard(s) and config.json (compressed-tensors) written to {}",
           result.shards.tensor_count, result.shards.total_size, result.shards.shard_names.size(),
           out_dir_.string());
  return result;
}

}  // namespace moeslim::formats::compressed_tensors
