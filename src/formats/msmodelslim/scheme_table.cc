#include "formats/msmodelslim/scheme_table.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/names.h"

namespace moeslim::formats::msmodelslim {
namespace {

using enum DTypeRule;
using enum Extent;
using quant::QuantScheme;

// A FLOAT linear in every layout: its weight and, when it has one, its bias, in the model's float dtype.
SchemeRule float_linear() {
  return {QuantScheme::kFloat,
          {{"weight", kModelFloat, {kOut, kIn}}, {"bias", kModelFloat, {kOut}, Typed::kScheme, /*optional=*/true}}};
}

// docs/msmodelslim-format.md §2: the v0 layouts (ascendV1, mindie) store scales in the model's float dtype.
std::vector<SchemeRule> v0_linears() {
  return {float_linear(),
          {QuantScheme::kW8A8,
           {{"weight", kI8, {kOut, kIn}},
            {"bias", kModelFloat, {kOut}, Typed::kFloat, /*optional=*/true},
            {"weight_scale", kModelFloat, {kOut, kOne}},
            {"weight_offset", kModelFloat, {kOut, kOne}},
            {"input_scale", kModelFloat, {kOne}},
            {"input_offset", kModelFloat, {kOne}},
            {"quant_bias", kI32, {kOut}},
            {"deq_scale", kDeqScale, {kOut}}}},
          {QuantScheme::kW8A8Dynamic,
           {{"weight", kI8, {kOut, kIn}},
            {"weight_scale", kModelFloat, {kOut, kOne}},
            {"weight_offset", kModelFloat, {kOut, kOne}}}}};
}

// docs/msmodelslim-format.md §5: the v1 layout stores scales in float32 and packs int4 experts; it has no static activations.
std::vector<SchemeRule> v1_linears() {
  return {float_linear(),
          {QuantScheme::kW8A8Dynamic,
           {{"weight", kI8, {kOut, kIn}}, {"weight_scale", kF32, {kOut, kOne}}, {"weight_offset", kF32, {kOut, kOne}}}},
          {QuantScheme::kW4A8Dynamic,
           {{"weight", kI8, {kHalfOut, kIn}},
            {"weight_scale", kF32, {kOut, kOne}},
            {"weight_offset", kF32, {kOut, kOne}},
            {"scale_bias", kF32, {kOut, kScaleBiasColumns}}}}};
}

// v0 norms carry a bias (m4 smoothing gives every norm one; zeros otherwise); the v1 layout's have none.
std::vector<TensorRule> v0_norm(bool mindie_copies) {
  std::vector<TensorRule> norm{{"weight", kModelFloat, {kOut}, Typed::kFloat}, {"bias", kModelFloat, {kOut}, Typed::kFloat}};
  if (mindie_copies) {
    norm.push_back({"module.weight", kModelFloat, {kOut}, Typed::kModelQuantType});
    norm.push_back({"module.bias", kModelFloat, {kOut}, Typed::kModelQuantType});
  }
  return norm;
}

const std::vector<LayoutRules>& table() {
  static const std::vector<LayoutRules> rules{
      {Layout::kAscendV1, "ascendV1", kW8A8ShardBase, kAscendV1DescriptionFile, "W8A8", v0_linears(), v0_norm(false),
       true},
      {Layout::kMindIE, "mindie", kW8A8ShardBase, kMindIEDescriptionFile, "W8A8", v0_linears(), v0_norm(true), true},
      // The v1 saver's model-level type is the highest-priority *visible* one: W4A8_DYNAMIC is deliberately
      // hidden from this field, so a W4A8 model (int8 attention, int4 experts) says W8A8_DYNAMIC.
      {Layout::kAscendV1V1, "ascendV1-v1", kW4A8ShardBase, kAscendV1DescriptionFile, "W8A8_DYNAMIC", v1_linears(),
       {{"weight", kModelFloat, {kOut}, Typed::kFloat}}, false},
  };
  return rules;
}

}  // namespace

const TensorRule* SchemeRule::find(std::string_view suffix) const {
  for (const TensorRule& t : tensors) {
    if (t.suffix == suffix) return &t;
  }
  return nullptr;
}

const SchemeRule* LayoutRules::scheme(quant::QuantScheme s) const {
  for (const SchemeRule& r : linears) {
    if (r.scheme == s) return &r;
  }
  return nullptr;
}

const SchemeRule* LayoutRules::scheme(std::string_view description_type) const {
  for (const SchemeRule& r : linears) {
    if (r.type() == description_type) return &r;
  }
  return nullptr;
}

DType LayoutRules::scale_dtype(DType float_dtype) const {
  return resolve_dtype(scheme(QuantScheme::kW8A8Dynamic)->find("weight_scale")->dtype, float_dtype);
}

const LayoutRules& layout_rules(Layout layout) { return table().at(static_cast<std::size_t>(layout)); }

const std::vector<Layout>& all_layouts() {
  static const std::vector<Layout> layouts{Layout::kAscendV1, Layout::kMindIE, Layout::kAscendV1V1};
  return layouts;
}

DType resolve_dtype(DTypeRule rule, DType float_dtype) {
  switch (rule) {
    case kI8: return DType::kI8;
    case kI32: return DType::kI32;
    case kF32: return DType::kF32;
    case kModelFloat: return float_dtype;
    case kDeqScale: return float_dtype == DType::kF16 ? DType::kI64 : DType::kF32;
  }
  throw Error(ErrorCode::kInternal, "unknown dtype rule");
}

Shape resolve_shape(const std::vector<Extent>& shape, const ModuleDims& dims) {
  Shape out;
  for (Extent e : shape) {
    switch (e) {
      case kOut: out.push_back(dims.out); break;
      case kIn: out.push_back(dims.in); break;
      case kHalfOut: out.push_back(dims.out / 2); break;
      case kOne: out.push_back(1); break;
      case kScaleBiasColumns: out.push_back(dims.scale_bias_columns); break;
    }
  }
  return out;
}

std::string described_type(const TensorRule& rule, const std::string& scheme_type, const LayoutRules& layout) {
  switch (rule.typed) {
    case Typed::kScheme: return scheme_type;
    case Typed::kFloat: return quant::quant_scheme_name(QuantScheme::kFloat);
    case Typed::kModelQuantType: return std::string(layout.model_quant_type);
  }
  throw Error(ErrorCode::kInternal, "unknown description typing");
}

std::vector<NamedTensor> in_table_order(const std::vector<TensorRule>& rules, const std::string& scheme_type,
                                        const LayoutRules& layout, const std::string& module, const ModuleDims& dims,
                                        DType float_dtype, std::vector<std::pair<std::string_view, Tensor>> parts) {
  std::vector<NamedTensor> out;
  std::size_t used = 0;
  for (const TensorRule& rule : rules) {
    const std::string name = tensor_name(module, rule.suffix);
    auto part = std::find_if(parts.begin(), parts.end(), [&](const auto& p) { return p.first == rule.suffix; });
    if (part == parts.end()) {
      if (rule.optional) continue;
      throw Error(ErrorCode::kInternal, "the scheme table lists this tensor but nothing computed it", {}, name);
    }
    ++used;
    const DType dtype = resolve_dtype(rule.dtype, float_dtype);
    const Shape shape = resolve_shape(rule.shape, dims);
    if (part->second.dtype() != dtype || part->second.shape() != shape) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("computed as {} {}, but the {} scheme table says {} {}", dtype_name(part->second.dtype()),
                              shape_to_string(part->second.shape()), layout.name, dtype_name(dtype),
                              shape_to_string(shape)),
                  {}, name);
    }
    out.push_back({name, std::move(part->second), described_type(rule, scheme_type, layout)});
  }
  if (used != parts.size()) {
    throw Error(ErrorCode::kInternal, "a computed tensor is not in the " + std::string(layout.name) + " scheme table",
                {}, module);
  }
  return out;
}

std::optional<std::int64_t> scale_bias_columns(const std::string& module) {
  const auto dot = module.rfind('.');
  const std::string leaf = dot == std::string::npos ? module : module.substr(dot + 1);
  if (leaf == "down_proj") return kDownProjScaleBiasChunks;
  if (leaf == "gate_proj" || leaf == "up_proj") return 1;
  return std::nullopt;
}

}  // namespace moeslim::formats::msmodelslim
