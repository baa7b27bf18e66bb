#include "formats/msmodelslim/w4a8_tensors.h"

#include <fmt/core.h>

#include <cmath>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/float_encoding.h"
#include "model/quantized_linear.h"

namespace moeslim::formats::msmodelslim {
namespace {

[[noreturn]] void bad_field(const std::string& tensor, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, detail, {}, tensor);
}

// The I8 [out, in] codes' `out`.
std::int64_t checked_out_features(const quant::QuantizedLinear& linear, const std::string& weight_name) {
  const Tensor& w = linear.weight;
  if (w.dtype() != DType::kI8) {
    bad_field(weight_name, fmt::format("a {} weight must hold I8 codes, not {}",
                                       quant::quant_scheme_name(linear.scheme), dtype_name(w.dtype())));
  }
  if (w.rank() != 2 || w.dim(0) <= 0 || w.dim(1) <= 0) {
    bad_field(weight_name, "weight must be [out, in] with out, in > 0, got " + shape_to_string(w.shape()));
  }
  return w.dim(0);
}

// weight_scale as the v1 saver stores it: F32 [out, 1] (a BF16/F16 input widens exactly), finite and > 0.
Tensor checked_weight_scale(const Tensor& scale, std::int64_t out, const std::string& tensor) {
  if (scale.empty() || !is_float_dtype(scale.dtype())) {
    bad_field(tensor, fmt::format("must be a float tensor with {} elements, got {} {}", out, dtype_name(scale.dtype()),
                                  shape_to_string(scale.shape())));
  }
  if (scale.numel() != static_cast<std::size_t>(out)) {
    bad_field(tensor, fmt::format("has shape {}, expected {} elements (one per output row)",
                                  shape_to_string(scale.shape()), out));
  }
  const Tensor f32 = to_float_dtype(scale, DType::kF32).reshaped({out, 1});
  for (std::int64_t n = 0; n < out; ++n) {
    const float s = f32.data<float>()[n];
    if (!(std::isfinite(s) && s > 0)) {
      bad_field(tensor, fmt::format("row {} is {}; scales must be finite and positive", n, s));
    }
  }
  return f32;
}

}  // namespace

Tensor w4a8_scale_bias(const Tensor& codes, const Tensor& weight_scale, std::int64_t columns,
                       const std::string& tensor_name) {
  if (codes.dtype() != DType::kI8 || codes.rank() != 2 || weight_scale.dtype() != DType::kF32 ||
      weight_scale.numel() != static_cast<std::size_t>(codes.dim(0)) || columns <= 0) {
    throw Error(ErrorCode::kInternal,
                fmt::format("scale_bias needs I8 codes [out, in], F32 scales [out] and columns > 0; got {} {}, {} {}, "
                            "{} columns",
                            dtype_name(codes.dtype()), shape_to_string(codes.shape()), dtype_name(weight_scale.dtype()),
                            shape_to_string(weight_scale.shape()), columns),
                {}, tensor_name);
  }
  const std::int64_t out = codes.dim(0), in = codes.dim(1);
  if (in % columns != 0) {
    bad_field(tensor_name, fmt::format("the input width {} does not split into {} equal chunks", in, columns));
  }
  const std::int64_t chunk = in / columns;
  Tensor result = Tensor::zeros(DType::kF32, {out, columns});
  const auto* q = codes.data<std::int8_t>();
  const auto* s = weight_scale.data<float>();
  float* dst = result.mutable_data<float>();
  for (std::int64_t n = 0; n < out; ++n) {
    for (std::int64_t j = 0; j < columns; ++j) {
      std::int64_t code_sum = 0;
      for (std::int64_t k = j * chunk; k < (j + 1) * chunk; ++k) code_sum += q[n * in + k];
      // Σ_k q·s = s·Σ_k q exactly: |Σ q| < 2^29 for any real width, and 24 + 29 bits fit a double; ×8 is exact.
      dst[n * columns + j] = static_cast<float>(8.0 * static_cast<double>(s[n]) * static_cast<double>(code_sum));
    }
  }
  return result;
}

std::vector<NamedTensor> w4a8_linear_tensors(const quant::QuantizedLinear& linear) {
  const std::string module = module_path(linear);
  if (module.empty()) throw Error(ErrorCode::kInvalidArgument, "a linear has an empty module name");
  const auto name = [&](std::string_view part) { return tensor_name(module, part); };
  const LayoutRules& rules = layout_rules(Layout::kAscendV1V1);
  const SchemeRule* rule = rules.scheme(linear.scheme);
  if (linear.scheme == quant::QuantScheme::kFloat) {
    throw Error(ErrorCode::kUnsupported, "a FLOAT linear is written by the writer's float path", {}, name("weight"));
  }
  if (rule == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                std::string(quant::quant_scheme_name(linear.scheme)) +
                    " (static activations) is written only in the v0 layouts, not the W4A8 one",
                {}, name("weight"));
  }
  const std::string type = rule->type();
  const std::int64_t out = checked_out_features(linear, name("weight"));
  if (!linear.bias.empty()) {
    bad_field(name("bias"), "a " + type + " linear cannot carry a bias (its loaders have no bias input)");
  }
  const Tensor scale = checked_weight_scale(linear.weight_scale, out, name("weight_scale"));
  ModuleDims dims{out, linear.weight.dim(1)};
  std::vector<std::pair<std::string_view, Tensor>> parts{
      {"weight", linear.weight}, {"weight_scale", scale}, {"weight_offset", Tensor::zeros(DType::kF32, {out, 1})}};
  if (linear.scheme == quant::QuantScheme::kW4A8Dynamic) {
    const std::optional<std::int64_t> columns = scale_bias_columns(module);
    if (!columns) {
      throw Error(ErrorCode::kUnsupported,
                  "W4A8_DYNAMIC is defined for gate_proj, up_proj and down_proj only (the layout's scale_bias has no "
                  "specified form for other modules)",
                  {}, name("weight"));
    }
    dims.scale_bias_columns = *columns;
    try {
      parts[0].second = model::pack_int4_rows(linear.weight);
    } catch (const Error& e) {
      bad_field(name("weight"), e.detail());
    }
    parts.emplace_back("scale_bias", w4a8_scale_bias(linear.weight, scale.reshaped({out}), *columns, name("scale_bias")));
  }
  // The float dtype only matters for FLOAT tensors, which a quantized linear has none of.
  return in_table_order(rule->tensors, type, rules, module, dims, DType::kBF16, std::move(parts));
}

std::vector<NamedTensor> w4a8_norm_tensors(const quant::NormTensors& norm, DType float_dtype) {
  const std::string module = module_path(norm);
  if (module.empty()) throw Error(ErrorCode::kInvalidArgument, "a norm has an empty module name");
  const NamedTensor weight = float_named_tensor(tensor_name(module, "weight"), norm.weight, float_dtype);
  if (weight.tensor.rank() != 1) {
    bad_field(weight.name, "a norm weight must be 1-D, got " + shape_to_string(weight.tensor.shape()));
  }
  if (!norm.bias.empty()) {
    const std::string bias_name = tensor_name(module, "bias");
    if (!is_float_dtype(norm.bias.dtype())) bad_field(bias_name, "a norm bias must be a float tensor");
    const Tensor b = norm.bias.to_f32();
    for (std::size_t i = 0; i < b.numel(); ++i) {
      if (b.data<float>()[i] != 0.0f) {
        bad_field(bias_name, fmt::format("element {} is {}: the W4A8 layout's norms are plain RMSNorms with no bias, "
                                         "so a nonzero norm bias cannot be written",
                                         i, b.data<float>()[i]));
      }
    }
  }
  const LayoutRules& rules = layout_rules(Layout::kAscendV1V1);
  return in_table_order(rules.norm, std::string(rules.model_quant_type), rules, module, {weight.tensor.dim(0)},
                        float_dtype, {{"weight", weight.tensor}});
}

}  // namespace moeslim::formats::msmodelslim
