// inspect: per-scheme tensor rules and the values loaders rely on (docs/msmodelslim-format.md §2, §5;
// docs/msmodelslim-algorithms.md §4.6).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_set>

#include "core/half.h"
#include "formats/msmodelslim/float_encoding.h"
#include "formats/msmodelslim/inspect_parts.h"
#include "formats/msmodelslim/scheme_table.h"
#include "formats/module_names.h"
#include "model/quantized_linear.h"

namespace moeslim::formats::msmodelslim::inspect_detail {
namespace {

const std::string kFloat = "FLOAT";
const std::string kW4A8Dynamic = "W4A8_DYNAMIC";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string module_of(const std::string& tensor) {
  const auto dot = tensor.rfind('.');
  return dot == std::string::npos ? std::string() : tensor.substr(0, dot);
}

std::string leaf_of(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

// RMSNorm modules: model.norm, input_layernorm, post_attention_layernorm, q_norm, k_norm.
bool is_norm_module(const std::string& module) { return ends_with(leaf_of(module), "norm"); }

std::string dtype_list(const std::vector<DType>& dtypes) {
  std::string s;
  for (DType d : dtypes) s += (s.empty() ? "" : " or ") + std::string(dtype_name(d));
  return s;
}

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

std::vector<float> float_values(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

template <typename T>
std::vector<T> integer_values(const Tensor& t) {
  std::vector<T> v(t.numel());
  if (!v.empty()) std::memcpy(v.data(), t.bytes(), t.nbytes());  // mapped data need not be aligned
  return v;
}

// Counts the non-finite elements of a float tensor from their bit patterns (no float copy of a 2 GB embedding).
std::size_t count_non_finite(const Tensor& t, std::size_t& first) {
  std::size_t count = 0;
  auto scan = [&](auto mask, auto zero) {
    using Bits = decltype(zero);
    const std::byte* p = t.bytes();
    for (std::size_t i = 0; i < t.numel(); ++i) {
      Bits b;
      std::memcpy(&b, p + i * sizeof(Bits), sizeof(Bits));
      if ((b & mask) == mask && count++ == 0) first = i;
    }
  };
  switch (t.dtype()) {
    case DType::kBF16: scan(std::uint16_t{0x7f80}, std::uint16_t{}); break;
    case DType::kF16: scan(std::uint16_t{0x7c00}, std::uint16_t{}); break;
    case DType::kF32: scan(std::uint32_t{0x7f800000u}, std::uint32_t{}); break;
    default: break;
  }
  return count;
}

float ulp(float v) {
  const float a = std::fabs(v);
  return std::nextafter(a, std::numeric_limits<float>::infinity()) - a;
}

class Checker {
 public:
  Checker(const RuleContext& c, InspectReport& report) : c_(c), report_(report) {
    for (const auto& [name, type] : c_.description.entries) children_[module_of(name)].insert(name);
    for (const std::string& name : c_.shards.names()) children_[module_of(name)].insert(name);
  }

  void run() {
    check_presence();
    check_modules();
    check_remaining_tensors();
    scan_and_summarise();
  }

 private:
  void violation(const std::string& subject, std::string problem) {
    report_.violations.push_back({subject, std::move(problem)});
  }

  void check_presence() {
    for (const std::string& name : c_.shards.names()) {
      if (!c_.description.type_of.count(name)) violation(name, "stored but not in " + c_.description.file_name);
    }
    for (const auto& [name, type] : c_.description.entries) {
      if (!c_.shards.contains(name)) violation(name, "in " + c_.description.file_name + " but stored in no shard");
    }
  }

  // Each quantized linear and each norm, found by its ".weight" entry.
  void check_modules() {
    for (const auto& [name, type] : c_.description.entries) {
      if (!c_.shards.contains(name) || !ends_with(name, ".weight")) continue;
      const std::string module = module_of(name);
      if (c_.rules.layout == Layout::kMindIE && ends_with(module, ".module")) continue;  // a norm's copy
      const SchemeRule* rule = c_.rules.scheme(type);
      if (type == kFloat) {
        if (is_norm_module(module)) norm(module);
      } else if (rule == nullptr) {
        claimed_.insert(name);
        violation(name, fmt::format("the {} layout cannot hold {} linears", c_.rules.name, type));
      } else if (rule->scheme == quant::QuantScheme::kW8A8) {
        w8a8_static_linear(module, *rule);
      } else {
        dynamic_linear(module, *rule);
      }
      report_.by_type[type].modules++;
    }
  }

  // Tensors no module rule took: FLOAT ones get the float rule, quantized ones have lost their linear.
  void check_remaining_tensors() {
    for (const auto& [name, type] : c_.description.entries) {
      if (!c_.shards.contains(name) || claimed_.count(name)) continue;
      if (type == kFloat) {
        float_tensor(name);
      } else {
        violation(name, fmt::format("typed {} but not part of a {} linear (no {}.weight of that type)", type, type,
                                    module_of(name)));
      }
    }
  }

  // Every stored tensor: counted under its type, and scanned for NaN/Inf if it is a float tensor.
  void scan_and_summarise() {
    for (const std::string& name : c_.shards.names()) {
      const io::TensorInfo& info = c_.shards.info(name);
      const auto described = c_.description.type_of.find(name);
      InspectTypeSummary& s = report_.by_type[described == c_.description.type_of.end() ? "(undescribed)"
                                                                                        : described->second];
      s.tensors++;
      s.bytes += info.nbytes();
      if (is_float_dtype(info.dtype)) {
        std::size_t first = 0;
        const Tensor t = c_.shards.tensor(name);
        if (const std::size_t n = count_non_finite(t, first)) {
          violation(name, fmt::format("{} non-finite value(s), the first at flat index {} ({})", n, first,
                                      t.to_f32().data<float>()[first]));
        }
      }
      c_.shards.release(name);  // a large model's pages are read once and dropped
    }
  }

  // The stored tensor `name` if it has description type `type`, one of `dtypes` and (unless empty) `shape`;
  // otherwise a violation and nullopt. An undescribed tensor is already reported by check_presence().
  std::optional<Tensor> require(const std::string& name, const std::string& type, const std::vector<DType>& dtypes,
                                const Shape& shape, const std::string& owner) {
    claimed_.insert(name);
    if (!c_.shards.contains(name)) {
      violation(name, "missing: every " + owner + " has one");
      return std::nullopt;
    }
    const io::TensorInfo& info = c_.shards.info(name);
    bool ok = true;
    const auto described = c_.description.type_of.find(name);
    if (described != c_.description.type_of.end() && described->second != type) {
      violation(name, fmt::format("described as {}; in a {} it must be {}", described->second, owner, type));
      ok = false;
    }
    if (std::find(dtypes.begin(), dtypes.end(), info.dtype) == dtypes.end()) {
      violation(name, fmt::format("stored as {}; in a {} it must be {}", dtype_name(info.dtype), owner,
                                  dtype_list(dtypes)));
      ok = false;
    }
    if (!shape.empty() && info.shape != shape) {
      violation(name, fmt::format("has shape {}; in a {} it must be {}", shape_to_string(info.shape), owner,
                                  shape_to_string(shape)));
      ok = false;
    }
    if (!ok) return std::nullopt;
    return c_.shards.tensor(name);
  }

  // The tensor `suffix` of `module` as the scheme table gives it (type, dtype, shape for `dims`).
  std::optional<Tensor> require_part(const std::string& module, const SchemeRule& rule, std::string_view suffix,
                                     const ModuleDims& dims) {
    const TensorRule& t = *rule.find(suffix);
    return require(tensor_name(module, suffix), described_type(t, rule.type(), c_.rules),
                   {resolve_dtype(t.dtype, c_.float_dtype)}, resolve_shape(t.shape, dims), rule.type() + " linear");
  }

  static std::set<std::string> parts_of(const SchemeRule& rule) {
    std::set<std::string> parts;
    for (const TensorRule& t : rule.tensors) parts.emplace(t.suffix);
    return parts;
  }

  bool symmetric_weight_codes() const { return c_.rules.symmetric_codes; }

  void no_other_tensors(const std::string& module, const std::set<std::string>& allowed, const std::string& owner) {
    for (const std::string& name : children_[module]) {
      if (!allowed.count(name.substr(module.size() + 1))) violation(name, "not a tensor of a " + owner);
    }
  }

  // The I8 [out, in] weight of a quantized linear; nullopt (with a violation) if it is not one.
  std::optional<Tensor> int8_weight(const std::string& module, const std::string& type, const std::string& owner) {
    std::optional<Tensor> w = require(module + ".weight", type, {DType::kI8}, {}, owner);
    if (w && (w->rank() != 2 || w->dim(0) <= 0 || w->dim(1) <= 0)) {
      violation(module + ".weight", "must be [out, in], got " + shape_to_string(w->shape()));
      return std::nullopt;
    }
    return w;
  }

  void weight_codes_in_range(const std::string& name, const Tensor& w) {
    if (!symmetric_weight_codes()) return;  // v1 codes use the whole [-128, 127]
    std::size_t count = 0, first = 0;
    const auto* q = reinterpret_cast<const std::int8_t*>(w.bytes());
    for (std::size_t i = 0; i < w.numel(); ++i) {
      if (q[i] == -128 && count++ == 0) first = i;
    }
    if (count) {
      violation(name, fmt::format("{} code(s) of -128, the first at [{}, {}]; the v0 symmetric weight range is "
                                  "[-127, 127]",
                                  count, first / w.dim(1), first % w.dim(1)));
    }
  }

  // weight_scale > 0 and finite, weight_offset all zero.
  void scale_and_zero_offset(const std::string& module, const Tensor& scale, const Tensor& offset) {
    const std::vector<float> s = float_values(scale);
    for (std::size_t n = 0; n < s.size(); ++n) {
      if (!(s[n] > 0) || !std::isfinite(s[n])) {
        violation(module + ".weight_scale", fmt::format("row {} has scale {}; scales must be positive", n, s[n]));
        break;
      }
    }
    const std::vector<float> z = float_values(offset);
    for (std::size_t n = 0; n < z.size(); ++n) {
      if (z[n] != 0) {
        violation(module + ".weight_offset", fmt::format("row {} is {}; weights are symmetric, offsets 0", n, z[n]));
        break;
      }
    }
  }

  // Marks the linear's tensors as checked here (whatever the outcome) and reports any others under it.
  void claim_linear(const std::string& module, const std::set<std::string>& parts, const std::string& owner) {
    for (const auto& part : parts) claimed_.insert(module + "." + part);
    no_other_tensors(module, parts, owner);
  }

  void dynamic_linear(const std::string& module, const SchemeRule& rule) {
    const std::string type = rule.type();
    const std::string owner = type + " linear";
    claim_linear(module, parts_of(rule), owner);
    const std::optional<Tensor> w = int8_weight(module, type, owner);
    if (!w) return;
    if (rule.scheme == quant::QuantScheme::kW4A8Dynamic) {
      int4_linear(module, *w, rule);
    } else {
      const ModuleDims dims{w->dim(0), w->dim(1)};
      weight_codes_in_range(module + ".weight", *w);
      const auto scale = require_part(module, rule, "weight_scale", dims);
      const auto offset = require_part(module, rule, "weight_offset", dims);
      if (scale && offset) scale_and_zero_offset(module, *scale, *offset);
    }
    c_.shards.release(module + ".weight");
  }

  // W4A8_DYNAMIC: two int4 codes per byte along the output dimension, so the weight is [out/2, in] where
  // weight_scale has `out` rows; scale_bias [out, 1] (gate/up_proj) or [out, 16] (down_proj) with its value
  // rule (check_scale_bias).
  void int4_linear(const std::string& module, const Tensor& packed, const SchemeRule& rule) {
    const std::string owner = kW4A8Dynamic + " linear";
    const std::string weight_name = module + ".weight";
    const std::int64_t in = packed.dim(1);
    // `out` comes from weight_scale when it is a column, so that a wrongly shaped weight is the one named.
    std::int64_t out = 2 * packed.dim(0);
    const std::string scale_name = module + ".weight_scale";
    if (c_.shards.contains(scale_name)) {
      const Shape& s = c_.shards.info(scale_name).shape;
      if (s.size() == 2 && s[1] == 1 && s[0] > 0) out = s[0];
    }
    bool weight_ok = true;
    if (out % 2 != 0 || packed.dim(0) != out / 2) {
      violation(weight_name, fmt::format("has shape {}; with weight_scale's {} rows a W4A8_DYNAMIC weight, two int4 "
                                         "codes per byte along the output dimension, must be [{}, {}]",
                                         shape_to_string(packed.shape()), out, out / 2, in));
      weight_ok = false;
    }
    const auto scale = require_part(module, rule, "weight_scale", {out, in});
    const auto offset = require_part(module, rule, "weight_offset", {out, in});
    if (scale && offset) scale_and_zero_offset(module, *scale, *offset);

    const std::string bias_name = module + ".scale_bias";
    const std::optional<std::int64_t> columns = scale_bias_columns(module);
    if (!columns) {
      claimed_.insert(bias_name);
      violation(weight_name, "W4A8_DYNAMIC is defined for gate_proj, up_proj and down_proj only (scale_bias has no "
                             "specified form for " + leaf_of(module) + ")");
      return;
    }
    const auto scale_bias = require_part(module, rule, "scale_bias", {out, in, *columns});
    if (in % *columns != 0) {
      violation(bias_name, fmt::format("the input width {} does not split into {} equal chunks", in, *columns));
      return;
    }
    if (weight_ok && scale && scale_bias) check_scale_bias(bias_name, packed, *scale, *scale_bias);
  }

  // scale_bias[n, j] == 8 · Σ_{k in chunk j} q[n,k] · s[n] (chunks: `columns` equal contiguous slices of a row).
  // The exact value is computed here (integer code sums, one float32 product: exact in double). msModelSlim
  // forms q·s and sums the chunk in float32, in an order we do not know: every term then passes through at
  // most m roundings (its product and m − 1 additions, whatever the order), so the result errs by at most
  // γ_m·Σ|terms| with γ_m = m·u / (1 − m·u), u = 2^-24 (Higham's bound; pairwise summation does better), and
  // ×8 is exact. Half an ulp more admits a result computed more accurately and rounded once (as the writer
  // does). Anything further is a wrong value; a sum formed in bf16 would be too (scale_bias is fp32:
  // docs/msmodelslim-format.md §5).
  void check_scale_bias(const std::string& name, const Tensor& packed, const Tensor& scale, const Tensor& scale_bias) {
    const Tensor codes = model::unpack_int4_rows(packed);
    const std::int64_t out = codes.dim(0), in = codes.dim(1), columns = scale_bias.dim(1), chunk = in / columns;
    const std::vector<float> s = float_values(scale);
    const std::vector<float> stored = float_values(scale_bias);
    const auto* q = codes.data<std::int8_t>();
    constexpr double kUnitRoundoff = 1.0 / (1 << 24);
    const double m_u = static_cast<double>(chunk) * kUnitRoundoff;
    const double gamma = m_u / (1.0 - m_u);
    std::size_t wrong = 0;
    std::int64_t first = 0;
    double first_expected = 0;
    for (std::int64_t n = 0; n < out; ++n) {
      for (std::int64_t j = 0; j < columns; ++j) {
        std::int64_t sum = 0, abs_sum = 0;
        for (std::int64_t k = j * chunk; k < (j + 1) * chunk; ++k) {
          sum += q[n * in + k];
          abs_sum += std::abs(static_cast<int>(q[n * in + k]));
        }
        const double expected = 8.0 * static_cast<double>(s[n]) * static_cast<double>(sum);
        const double bound = gamma * 8.0 * static_cast<double>(s[n]) * static_cast<double>(abs_sum) +
                             0.5 * static_cast<double>(ulp(static_cast<float>(expected)));
        const float v = stored[n * columns + j];
        if (!(std::fabs(static_cast<double>(v) - expected) <= bound) && wrong++ == 0) {
          first = n * columns + j;
          first_expected = expected;
        }
      }
    }
    if (wrong) {
      violation(name, fmt::format("{} of {} values differ from 8 * sum(codes * weight_scale) over {} chunk(s) of {} "
                                  "inputs; [{}, {}] is {} but the codes and scale give {}",
                                  wrong, out * columns, columns, chunk, first / columns, first % columns,
                                  stored[first], first_expected));
    }
  }

  void w8a8_static_linear(const std::string& module, const SchemeRule& rule) {
    const std::string owner = rule.type() + " linear";
    const std::string p = module + ".";
    claim_linear(module, parts_of(rule), owner);
    const std::optional<Tensor> w = int8_weight(module, rule.type(), owner);
    if (!w) return;
    const std::int64_t out = w->dim(0);
    const ModuleDims dims{out, w->dim(1)};
    weight_codes_in_range(p + "weight", *w);
    std::optional<Tensor> bias;  // optional: o_proj has none (its quant_bias folds a zero bias)
    bool bias_ok = true;
    if (c_.shards.contains(p + "bias")) {
      bias = require_part(module, rule, "bias", dims);
      bias_ok = bias.has_value();
    }
    const auto scale = require_part(module, rule, "weight_scale", dims);
    const auto offset = require_part(module, rule, "weight_offset", dims);
    const auto input_scale = require_part(module, rule, "input_scale", dims);
    const auto input_offset = require_part(module, rule, "input_offset", dims);
    const auto quant_bias = require_part(module, rule, "quant_bias", dims);
    const auto deq_scale = require_part(module, rule, "deq_scale", dims);
    if (scale && offset) scale_and_zero_offset(module, *scale, *offset);

    float x_scale = 0, x_offset = 0;
    bool activation_ok = input_scale && input_offset;
    if (input_scale) {
      x_scale = float_values(*input_scale)[0];
      if (!(x_scale > 0) || !std::isfinite(x_scale)) {
        violation(p + "input_scale", fmt::format("is {}; it must be positive", x_scale));
        activation_ok = false;
      }
    }
    if (input_offset) {
      x_offset = float_values(*input_offset)[0];
      if (x_offset != std::nearbyint(x_offset) || x_offset < -128 || x_offset > 127) {
        violation(p + "input_offset", fmt::format("is {}; it must be an integer in [-128, 127]", x_offset));
        activation_ok = false;
      }
    }
    if (activation_ok) shared_qkv_activation(module, x_scale, x_offset);
    if (!activation_ok || !scale || !deq_scale) return;
    const std::optional<std::vector<float>> deq = deq_values(p + "deq_scale", *deq_scale);
    if (!deq) return;
    const std::vector<float> s = float_values(*scale);
    std::size_t wrong = 0, first = 0;
    for (std::int64_t n = 0; n < out; ++n) {
      const float expected = round_to_float_dtype(x_scale * s[n], c_.float_dtype);
      if (bits_of(expected) != bits_of((*deq)[n]) && wrong++ == 0) first = static_cast<std::size_t>(n);
    }
    if (wrong) {
      violation(p + "deq_scale",
                fmt::format("{} of {} rows differ from float32({}(input_scale * weight_scale)); row {} is {} but "
                            "{} * {} gives {}",
                            wrong, out, dtype_name(c_.float_dtype), first, (*deq)[first], x_scale, s[first],
                            round_to_float_dtype(x_scale * s[first], c_.float_dtype)));
      return;  // quant_bias would be judged against a wrong deq_scale
    }
    if (quant_bias && bias_ok) check_quant_bias(p, *w, bias, *quant_bias, *deq, x_offset);
  }

  // q, k and v of one attention block share one input_scale / input_offset: vLLM-Ascend fuses them into one
  // qkv_proj with a single activation scale and offset (see scheme_table.h). The first of the three seen sets
  // the block's pair; another that differs is named.
  void shared_qkv_activation(const std::string& module, float x_scale, float x_offset) {
    const std::string leaf = leaf_of(module);
    if (leaf != "q_proj" && leaf != "k_proj" && leaf != "v_proj") return;
    const std::string block = module_of(module);
    const auto [it, first] = qkv_activation_.try_emplace(block, module, std::make_pair(x_scale, x_offset));
    if (first) return;
    const auto& [first_module, pair] = it->second;
    if (bits_of(pair.first) != bits_of(x_scale) || pair.second != x_offset) {
      violation(tensor_name(module, "input_scale"),
                fmt::format("input_scale {} / input_offset {} differ from {}'s {} / {}; vLLM-Ascend's fused qkv_proj "
                            "keeps one activation scale and offset for q, k and v",
                            x_scale, x_offset, first_module, pair.first, pair.second));
    }
  }

  // deq_scale as float32: F32 directly, or the float32 bits in an I64 (fp16 models).
  std::optional<std::vector<float>> deq_values(const std::string& name, const Tensor& t) {
    std::vector<float> v;
    if (t.dtype() == DType::kF32) {
      v = float_values(t);
    } else {
      for (std::int64_t stored : integer_values<std::int64_t>(t)) {
        const std::optional<float> f = decode_int64_deq_scale(stored);
        if (!f) {
          violation(name, fmt::format("element {} ({}) is not a sign-extended float32 bit pattern", v.size(), stored));
          return std::nullopt;
        }
        v.push_back(*f);
      }
    }
    for (std::size_t n = 0; n < v.size(); ++n) {
      if (!(v[n] > 0) || !std::isfinite(v[n])) {
        violation(name, fmt::format("row {} is {}; it must be positive", n, v[n]));
        return std::nullopt;
      }
    }
    return v;
  }

  // quant_bias[n] == rne(float32(bias[n] / deq[n]) − corr[n]) with corr[n] = Σ_k q[n,k] · input_offset, in
  // float32 as msModelSlim computes it. One off is accepted only at a float32-ambiguous .5 tie (see inspect.h).
  void check_quant_bias(const std::string& p, const Tensor& w, const std::optional<Tensor>& bias,
                        const Tensor& quant_bias, const std::vector<float>& deq, float x_offset) {
    const std::int64_t out = w.dim(0), in = w.dim(1);
    const std::vector<float> b = bias ? float_values(*bias) : std::vector<float>(out, 0.0f);
    const std::vector<std::int32_t> stored = integer_values<std::int32_t>(quant_bias);
    const auto* q = reinterpret_cast<const std::int8_t*>(w.bytes());
    const auto offset = static_cast<std::int64_t>(x_offset);
    std::size_t wrong = 0, first = 0;
    std::int64_t first_expected = 0;
    for (std::int64_t n = 0; n < out; ++n) {
      std::int64_t code_sum = 0;
      for (std::int64_t k = 0; k < in; ++k) code_sum += q[n * in + k];
      const std::int64_t corr = code_sum * offset;
      const float ratio = b[n] / deq[n];
      const float value = ratio - static_cast<float>(corr);
      const auto expected = static_cast<std::int64_t>(std::nearbyint(value));
      if (stored[n] == expected) continue;
      const double exact = static_cast<double>(b[n]) / deq[n] - static_cast<double>(corr);
      const double tie = std::floor(exact) + 0.5;
      const bool ambiguous_tie = std::fabs(exact - tie) <= ulp(ratio) + ulp(value) &&
                                 (stored[n] == static_cast<std::int64_t>(std::floor(exact)) ||
                                  stored[n] == static_cast<std::int64_t>(std::floor(exact)) + 1);
      if (!ambiguous_tie && wrong++ == 0) {
        first = static_cast<std::size_t>(n);
        first_expected = expected;
      }
    }
    if (wrong) {
      violation(p + "quant_bias",
                fmt::format("{} of {} rows differ from rne(bias / deq_scale - sum(weight) * input_offset); row {} is "
                            "{}, expected {}",
                            wrong, out, first, stored[first], first_expected));
    }
  }

  // A norm's tensors as the layout's norm rule lists them: a bias only where the rule has one (required
  // there), and the MindIE layout's ".module" copies, which must repeat the originals unchanged.
  void norm(const std::string& module) {
    const std::string owner = "norm";
    const io::TensorInfo& weight = c_.shards.info(tensor_name(module, "weight"));
    const ModuleDims dims{weight.shape.empty() ? 0 : weight.shape[0]};
    const auto rule_of = [&](std::string_view suffix) -> const TensorRule* {
      for (const TensorRule& t : c_.rules.norm) {
        if (t.suffix == suffix) return &t;
      }
      return nullptr;
    };
    const std::string bias_name = tensor_name(module, "bias");
    if (rule_of("bias") == nullptr && c_.shards.contains(bias_name)) {
      claimed_.insert(bias_name);
      violation(bias_name, "the W4A8 layout's norms are plain RMSNorms (flex smoothing adds no bias); its "
                           "loaders have no parameter for a norm bias");
      return;
    }
    std::map<std::string, std::optional<Tensor>, std::less<>> found;
    for (const TensorRule& t : c_.rules.norm) {
      if (t.suffix == "weight") continue;  // found by it; its dtype is the FLOAT rule's
      // The copies are typed as the description's model_quant_type, whatever the model's type is.
      const std::string type = t.typed == Typed::kModelQuantType ? c_.description.model_quant_type : kFloat;
      found[std::string(t.suffix)] = require(tensor_name(module, t.suffix), type,
                                             {resolve_dtype(t.dtype, c_.float_dtype)}, resolve_shape(t.shape, dims),
                                             owner);
    }
    for (const auto& [part, copy] : found) {
      if (!part.starts_with("module.") || !copy) continue;
      const std::string original_part = part.substr(std::string_view("module.").size());
      const std::optional<Tensor> original =
          original_part == "weight" ? std::optional<Tensor>(c_.shards.tensor(tensor_name(module, "weight")))
                                    : found[original_part];
      if (original && std::memcmp(copy->bytes(), original->bytes(), copy->nbytes()) != 0) {
        violation(tensor_name(module, part), "differs from " + tensor_name(module, original_part) +
                                                 "; the MindIE layout repeats it unchanged");
      }
    }
  }

  void float_tensor(const std::string& name) {
    const io::TensorInfo& info = c_.shards.info(name);
    if (!is_float_dtype(info.dtype)) {
      violation(name, fmt::format("a FLOAT tensor stored as {}", dtype_name(info.dtype)));
    } else if (c_.rules.layout != Layout::kAscendV1V1 && info.dtype != c_.float_dtype) {
      violation(name, fmt::format("a FLOAT tensor stored as {}, but the model's float dtype is {}",
                                  dtype_name(info.dtype), dtype_name(c_.float_dtype)));
    }
  }

  const RuleContext& c_;
  InspectReport& report_;
  std::map<std::string, std::set<std::string>> children_;  // module -> its tensors (described or stored)
  std::unordered_set<std::string> claimed_;                // checked by a linear's or a norm's rule
  // attention block -> the first of q/k/v seen and its (input_scale, input_offset)
  std::map<std::string, std::pair<std::string, std::pair<float, float>>> qkv_activation_;
};

}  // namespace

void check_tensors(const RuleContext& context, InspectReport& report) { Checker(context, report).run(); }

}  // namespace moeslim::formats::msmodelslim::inspect_detail
