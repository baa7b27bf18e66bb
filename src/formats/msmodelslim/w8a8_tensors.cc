#include "formats/msmodelslim/w8a8_tensors.h"

#include <fmt/core.h>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/float_encoding.h"

namespace moeslim::formats::msmodelslim {
namespace {

constexpr const char* kFloatType = "FLOAT";

[[noreturn]] void bad_field(const std::string& tensor, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, detail, {}, tensor);
}

void require_float(const Tensor& t, const std::string& tensor) {
  if (t.empty()) bad_field(tensor, "missing (empty tensor)");
  if (!is_float_dtype(t.dtype())) {
    bad_field(tensor, fmt::format("must be a float tensor, not {}", dtype_name(t.dtype())));
  }
}

void require_numel(const Tensor& t, std::size_t numel, const std::string& tensor) {
  if (t.numel() != numel) {
    bad_field(tensor, fmt::format("has shape {} ({} elements), expected {} elements", shape_to_string(t.shape()),
                                  t.numel(), numel));
  }
}

// A float field converted to float_dtype with `shape`; its values must survive the conversion unchanged.
Tensor exact_float(const Tensor& t, DType float_dtype, Shape shape, const std::string& tensor) {
  require_float(t, tensor);
  require_numel(t, shape_numel(shape), tensor);
  if (const auto i = first_inexact_element(t, float_dtype)) {
    bad_field(tensor, fmt::format("element {} ({}) is not exactly representable in {}; deq_scale and quant_bias must "
                                  "be computed from the values as written, so round it to {} first",
                                  *i, t.to_f32().data<float>()[*i], dtype_name(float_dtype), dtype_name(float_dtype)));
  }
  return to_float_dtype(t, float_dtype).reshaped(std::move(shape));
}

std::int64_t checked_out_features(const quant::QuantizedLinear& linear, const std::string& weight_name) {
  const Tensor& w = linear.weight;
  if (w.dtype() != DType::kI8) {
    bad_field(weight_name, fmt::format("a {} weight must hold I8 codes, not {}", quant::quant_scheme_name(linear.scheme),
                                       dtype_name(w.dtype())));
  }
  if (w.rank() != 2 || w.dim(0) <= 0 || w.dim(1) <= 0) {
    bad_field(weight_name, "weight must be [out, in] with out, in > 0, got " + shape_to_string(w.shape()));
  }
  return w.dim(0);
}

}  // namespace

NamedTensor float_named_tensor(const std::string& name, const Tensor& tensor, DType float_dtype) {
  require_float(tensor, name);
  return {name, to_float_dtype(tensor, float_dtype), kFloatType};
}

std::vector<NamedTensor> float_linear_tensors(const quant::QuantizedLinear& linear, DType float_dtype) {
  const std::string module = module_path(linear);
  const std::string weight_name = tensor_name(module, "weight");
  require_float(linear.weight, weight_name);
  if (linear.weight.rank() != 2) bad_field(weight_name, "weight must be [out, in], got " + shape_to_string(linear.weight.shape()));
  std::vector<std::pair<std::string_view, Tensor>> parts{{"weight", to_float_dtype(linear.weight, float_dtype)}};
  if (!linear.bias.empty()) {
    const std::string bias_name = tensor_name(module, "bias");
    require_float(linear.bias, bias_name);
    require_numel(linear.bias, static_cast<std::size_t>(linear.weight.dim(0)), bias_name);
    parts.emplace_back("bias", to_float_dtype(linear.bias, float_dtype).reshaped({linear.weight.dim(0)}));
  }
  const LayoutRules& rules = layout_rules(Layout::kAscendV1);  // the FLOAT rule is every layout's
  return in_table_order(rules.scheme(quant::QuantScheme::kFloat)->tensors, kFloatType, rules, module,
                        {linear.weight.dim(0), linear.weight.dim(1)}, float_dtype, std::move(parts));
}

std::vector<NamedTensor> w8a8_linear_tensors(const quant::QuantizedLinear& linear, DType float_dtype) {
  const std::string module = module_path(linear);
  if (float_dtype != DType::kBF16 && float_dtype != DType::kF16) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the model float dtype must be BF16 or F16, not {}", dtype_name(float_dtype)), {}, module);
  }
  if (module.empty()) throw Error(ErrorCode::kInvalidArgument, "a linear has an empty module name");
  if (linear.scheme == quant::QuantScheme::kFloat) return float_linear_tensors(linear, float_dtype);
  const LayoutRules& rules = layout_rules(Layout::kAscendV1);  // both v0 layouts write linears alike
  const SchemeRule* rule = rules.scheme(linear.scheme);
  if (rule == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                std::string(quant::quant_scheme_name(linear.scheme)) +
                    " linears are written in the W4A8 layout (ascendV1-v1), not the W8A8 one",
                {}, module);
  }

  const auto name = [&](std::string_view part) { return tensor_name(module, part); };
  const std::int64_t n = checked_out_features(linear, name("weight"));
  std::vector<std::pair<std::string_view, Tensor>> parts{
      {"weight", linear.weight},
      {"weight_scale", exact_float(linear.weight_scale, float_dtype, {n, 1}, name("weight_scale"))},
      {"weight_offset", Tensor::zeros(float_dtype, {n, 1})}};
  const ModuleDims dims{n, linear.weight.dim(1)};
  if (linear.scheme == quant::QuantScheme::kW8A8Dynamic) {
    if (!linear.bias.empty()) {
      // Loaders of W8A8_DYNAMIC layers have no bias input: it would be silently dropped.
      bad_field(name("bias"), "a W8A8_DYNAMIC linear cannot carry a bias");
    }
    return in_table_order(rule->tensors, rule->type(), rules, module, dims, float_dtype, std::move(parts));
  }

  // kW8A8 (static).
  if (!linear.bias.empty()) parts.emplace_back("bias", exact_float(linear.bias, float_dtype, {n}, name("bias")));
  parts.emplace_back("input_scale", exact_float(linear.input_scale, float_dtype, {1}, name("input_scale")));
  parts.emplace_back("input_offset", exact_float(linear.input_offset, float_dtype, {1}, name("input_offset")));
  if (linear.quant_bias.dtype() != DType::kI32 || linear.quant_bias.empty()) {
    bad_field(name("quant_bias"), fmt::format("must be I32, not {}", dtype_name(linear.quant_bias.dtype())));
  }
  require_numel(linear.quant_bias, static_cast<std::size_t>(n), name("quant_bias"));
  parts.emplace_back("quant_bias", linear.quant_bias.reshaped({n}));
  if (linear.deq_scale.dtype() != DType::kF32 || linear.deq_scale.empty()) {
    bad_field(name("deq_scale"), fmt::format("must be F32, not {}", dtype_name(linear.deq_scale.dtype())));
  }
  require_numel(linear.deq_scale, static_cast<std::size_t>(n), name("deq_scale"));
  parts.emplace_back("deq_scale", encode_deq_scale(linear.deq_scale.reshaped({n}), float_dtype));
  return in_table_order(rule->tensors, rule->type(), rules, module, dims, float_dtype, std::move(parts));
}

std::vector<NamedTensor> w8a8_norm_tensors(const quant::NormTensors& norm, DType float_dtype,
                                           bool mindie_module_copies, const std::string& model_quant_type) {
  const std::string module = module_path(norm);
  if (module.empty()) throw Error(ErrorCode::kInvalidArgument, "a norm has an empty module name");
  const std::string weight_name = tensor_name(module, "weight");
  require_float(norm.weight, weight_name);
  if (norm.weight.rank() != 1) bad_field(weight_name, "a norm weight must be 1-D, got " + shape_to_string(norm.weight.shape()));
  const Tensor weight = to_float_dtype(norm.weight, float_dtype);
  Tensor bias;
  if (norm.bias.empty()) {
    bias = Tensor::zeros(float_dtype, norm.weight.shape());
  } else {
    require_float(norm.bias, tensor_name(module, "bias"));
    require_numel(norm.bias, norm.weight.numel(), tensor_name(module, "bias"));
    bias = to_float_dtype(norm.bias, float_dtype).reshaped(norm.weight.shape());
  }
  std::vector<std::pair<std::string_view, Tensor>> parts{{"weight", weight}, {"bias", bias}};
  if (mindie_module_copies) {
    parts.emplace_back("module.weight", weight);
    parts.emplace_back("module.bias", bias);
  }
  const LayoutRules& rules = layout_rules(mindie_module_copies ? Layout::kMindIE : Layout::kAscendV1);
  return in_table_order(rules.norm, model_quant_type, rules, module, {norm.weight.dim(0)}, float_dtype,
                        std::move(parts));
}

}  // namespace moeslim::formats::msmodelslim
