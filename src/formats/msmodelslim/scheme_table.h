// The one table of what msModelSlim's three layouts write per quantization scheme: for each layout, which
// schemes it can hold and, per scheme, the tensors of one linear (suffix, description type, dtype, shape) in
// write order; and the tensors of one norm. The writer orders and checks what it writes by it, `inspect`
// checks a directory against it, the reader finds a linear's tensors by it, and the size estimate sums it.
// The values themselves (deq_scale, quant_bias, int4 packing, scale_bias) are computed in w8a8_tensors.cc /
// w4a8_tensors.cc and checked in inspect_rules.cc; this table says only which tensors there are.
//
// Static W8A8 (v0 layouts): q, k and v of one layer carry one shared input_scale / input_offset. vLLM-Ascend
// fuses them into a single qkv_proj and keeps only one activation scale and offset for it, so three different
// ones would load wrongly. Where it holds: the attention (src/model/decoder_layer.cc) hands the same normed
// input buffer to the q, k and v calibration observers, and each StaticCalibrationLinear
// (src/quant/calibration_linear.cc) derives its parameters from what it observed by the same arithmetic, so
// the three come out bit-identical; `inspect` checks it (a layer whose three differ is a violation).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

enum class Layout {
  kAscendV1,    // v0 W8A8: version + model_quant_type first, kv/fa_quant_type + group_size last
  kMindIE,      // v0 safe_tensor: model_quant_type first, nothing after the entries; norms' .module copies
  kAscendV1V1,  // v1 W4A8: entries first, then version, model_quant_type, metadata, group_size, optional
};

// How a tensor's dtype follows from the model's float dtype (BF16 or F16).
enum class DTypeRule {
  kI8,
  kI32,
  kF32,
  kModelFloat,  // the model's float dtype
  kDeqScale,    // F32; for an F16 model I64 holding the float32 bits (float_encoding.h)
};

// One dimension of a tensor's shape, in terms of its linear (or norm).
enum class Extent {
  kOut,               // output features (a norm's width)
  kIn,                // input features
  kHalfOut,           // out / 2: int4 codes packed two per byte along the output dimension
  kOne,               // 1
  kScaleBiasColumns,  // scale_bias_columns(module): 1 for gate/up_proj, 16 for down_proj
};

// The description type a tensor gets.
enum class Typed {
  kScheme,          // its linear's scheme ("W8A8", ...)
  kFloat,           // "FLOAT" (a static W8A8 linear's float bias)
  kModelQuantType,  // the description's model_quant_type (the MindIE layout's norm copies)
};

struct TensorRule {
  std::string_view suffix;  // the tensor is "<module>.<suffix>"
  DTypeRule dtype;
  std::vector<Extent> shape;
  Typed typed = Typed::kScheme;
  bool optional = false;  // written only when the module has one (a bias)
};

struct SchemeRule {
  quant::QuantScheme scheme;
  std::vector<TensorRule> tensors;  // write order

  const TensorRule* find(std::string_view suffix) const;
  std::string type() const { return quant::quant_scheme_name(scheme); }
};

struct LayoutRules {
  Layout layout;
  std::string_view name;              // the registry's name: "ascendV1", "mindie", "ascendV1-v1"
  std::string_view shard_base;        // shards "<base>-0000i-of-0000N.safetensors"
  std::string_view description_file;  // quant_model_description*.json
  std::string_view model_quant_type;  // the description's model-level type
  std::vector<SchemeRule> linears;    // the schemes the layout holds; FLOAT first
  std::vector<TensorRule> norm;       // a norm's tensors, write order
  bool symmetric_codes;               // int8 weight codes in [-127, 127] (v0); the v1 saver uses all of [-128, 127]

  // The scheme's rule; nullptr when the layout cannot hold it.
  const SchemeRule* scheme(quant::QuantScheme scheme) const;
  const SchemeRule* scheme(std::string_view description_type) const;
  DType scale_dtype(DType float_dtype) const;  // of weight_scale: the model's float dtype (v0) or F32 (v1)
};

const LayoutRules& layout_rules(Layout layout);
const std::vector<Layout>& all_layouts();  // registry order

// The sizes a linear's (or norm's) shape extents stand for. scale_bias_columns is 0 where it does not apply.
struct ModuleDims {
  std::int64_t out = 0;
  std::int64_t in = 0;
  std::int64_t scale_bias_columns = 0;
};

DType resolve_dtype(DTypeRule rule, DType float_dtype);
Shape resolve_shape(const std::vector<Extent>& shape, const ModuleDims& dims);
// The description type of a tensor written under `rule` for a module of scheme type `scheme_type`.
std::string described_type(const TensorRule& rule, const std::string& scheme_type, const LayoutRules& layout);

// A tensor as a writer adds it to the shards.
struct NamedTensor {
  std::string name;  // full tensor name, e.g. "model.layers.0.self_attn.q_proj.weight_scale"
  Tensor tensor;     // in its file dtype and shape
  std::string type;  // description type: "FLOAT", "W8A8", "W8A8_DYNAMIC", ...
};

// One module's tensors as written: named "<module>.<suffix>" (module_names.h), typed and ordered as `rules`
// (a SchemeRule's tensors, or a layout's norm) list them. `parts` holds the computed values by suffix; an
// optional rule without a part is skipped. kInternal when a part is missing, is not in the rules, or has
// another dtype or shape than the rule gives for `dims`: the table and the value code disagree.
std::vector<NamedTensor> in_table_order(const std::vector<TensorRule>& rules, const std::string& scheme_type,
                                        const LayoutRules& layout, const std::string& module, const ModuleDims& dims,
                                        DType float_dtype, std::vector<std::pair<std::string_view, Tensor>> parts);

// down_proj's scale_bias has one column per tensor-parallel slice of its input (msModelSlim's tp_num = 16).
inline constexpr std::int64_t kDownProjScaleBiasChunks = 16;

// The number of scale_bias columns of a W4A8_DYNAMIC projection. The saver tells projections apart only by
// name, so this does too, by the module name's last component: "down_proj" → 16, "gate_proj" / "up_proj" → 1.
// nullopt for any other module: the format defines scale_bias for the MLP projections only.
std::optional<std::int64_t> scale_bias_columns(const std::string& module);

}  // namespace moeslim::formats::msmodelslim
