// `weight: gptq`: GPTQ (gptq.h) on the Hessian of each linear's calibration inputs (linear_hessians.h), per output
// channel and symmetric, so that the output format does not change:
//   v1 recipes: the v1 grid, W8A8_DYNAMIC / W4A8_DYNAMIC tensors;
//   v0 recipes: v0's int8 grid (the same scales as minmax, codes within ±127) for W8A8 (whose activation
//     parameters the static calibration then fits to these codes) and W8A8_DYNAMIC, the linear's bias kept.
// A linear that too few calibration tokens reached (an expert the router seldom picks), or whose Hessian is not
// positive definite even after dampening, is quantized by the group's data-free fallback (`gptq_fallback`: ssz
// by default in v1, minmax, v0's only one) instead, and the report names it with the reason.
// W4A16 (v1): GPTQ on the group's grid (`group_size`, `symmetric`). With act_order the groups stay contiguous
// and their parameters come from the unupdated weights (GptqOptions::static_groups), so that the output needs
// no g_idx. Its fallback is minmax on the same grid whatever gptq_fallback says: ssz has no per-group form.
#include <climits>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "quant/gptq.h"
#include "quant/linear_quantizer.h"
#include "quant/step_registry.h"
#include "quant/v1_weight_quant.h"
#include "quant/w4a16_weight.h"

namespace moeslim::quant {
namespace {

constexpr double kDefaultDampening = 0.01;   // GPTQ's own default: λ = 1 % of mean(diag H)
constexpr std::int64_t kDefaultMinTokens = 32;

struct GptqSettings {
  double dampening = kDefaultDampening;
  // On: the columns are quantized in descending order of diag H, the inputs that carry the most energy first,
  // while the most columns are left to absorb their error. It costs nothing in these per-channel tensors, and
  // gave a lower mean KL on all three tiny models (bench/quality.sh's ablation rows, docs/gptq.md).
  bool act_order = true;
  std::int64_t min_tokens = kDefaultMinTokens;
  V1WeightMethod fallback = V1WeightMethod::kSsz;
  bool v1 = true;  // the recipe's apiversion: which grid, schemes and fallbacks
};

class Gptq final : public WeightMethod {
 public:
  explicit Gptq(GptqSettings s) : s_(s) {}
  std::string name() const override { return "gptq"; }
  nlohmann::ordered_json settings() const override {
    return {{"method", "gptq"},
            {"formulas", s_.v1 ? "v1" : "v0"},
            {"gptq_dampening", s_.dampening},
            {"gptq_act_order", s_.act_order},
            {"gptq_min_tokens", s_.min_tokens},
            {"gptq_fallback", s_.fallback == V1WeightMethod::kSsz ? "ssz" : "minmax"}};
  }
  bool supports(QuantScheme s) const override {
    return s_.v1 ? v1_weight_quant_produces(s) || s == QuantScheme::kW4A16
                 : s == QuantScheme::kW8A8 || s == QuantScheme::kW8A8Dynamic;
  }
  bool needs_input_hessian() const override { return true; }

  QuantizedWeight quantize(const LinearToQuantize& l) const override {
    const std::int64_t rows = l.hessian == nullptr ? 0 : l.hessian->rows;
    if (rows < s_.min_tokens || rows < l.min_tokens) {
      const bool recipe_floor = l.min_tokens > s_.min_tokens;
      return fall_back(l, fmt::format("{} calibration token{} reached it, fewer than {} ({})", rows,
                                      rows == 1 ? "" : "s", recipe_floor ? "min_expert_tokens" : "gptq_min_tokens",
                                      recipe_floor ? l.min_tokens : s_.min_tokens));
    }
    const std::string name = model::hf_module_name(l.module);
    if (l.weight.rank() != 2 || l.hessian->values.size() != static_cast<std::size_t>(l.weight.dim(1) * l.weight.dim(1))) {
      throw Error(ErrorCode::kInternal, "the Hessian does not fit the weight", {}, name + ".weight");
    }
    const std::int64_t in = l.weight.dim(1);
    const bool w4a16 = l.scheme == QuantScheme::kW4A16;
    GptqOptions o = w4a16 ? w4a16_options(l.grid, l.float_dtype) : GptqOptions{};
    if (!w4a16) o.bits = l.scheme == QuantScheme::kW4A8Dynamic ? WeightBits::kInt4 : WeightBits::kInt8;
    o.narrow_range = !s_.v1;
    o.static_groups = s_.act_order;
    o.dampening = s_.dampening;
    o.act_order = s_.act_order;
    o.float_dtype = l.float_dtype;
    std::shared_ptr<const GptqHessian> h;
    try {
      // Keyed by what the factor depends on: the same Hessian serves gate and up_proj (q, k and v_proj).
      const std::string key = fmt::format("gptq dampening={} act_order={}", o.dampening, o.act_order);
      h = l.hessian->derived<GptqHessian>(key, [&] { return prepare_gptq_hessian(l.hessian->values, in, o); });
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument) throw;
      return fall_back(l, e.detail());
    }
    GptqResult r;
    try {
      r = gptq_quantize(l.weight, *h, o);
    } catch (const Error& e) {
      throw Error(e.code(), e.detail(), {}, name + ".weight");
    }
    if (w4a16) return {w4a16_linear(l.module, l.grid, std::move(r)), {}};
    QuantizedLinear q;
    q.module = l.module;
    q.scheme = l.scheme;
    q.weight = std::move(r.codes);
    q.weight_scale = r.scale.reshaped({r.scale.dim(0)});
    if (!s_.v1) q.bias = l.bias;  // v0 keeps a linear's float bias (m4's W·shift), as minmax does
    return {std::move(q), {}};
  }

 private:
  // v1: ssz with V1WeightOptions' step count (msModelSlim's ext.step default) or minmax; v0: v0's minmax.
  QuantizedWeight fall_back(const LinearToQuantize& l, const std::string& why) const {
    if (l.scheme == QuantScheme::kW4A16) {
      return {quantize_w4a16_minmax(l.module, l.weight, l.grid, l.float_dtype), why + "; quantized with minmax"};
    }
    const char* method = s_.fallback == V1WeightMethod::kSsz ? "ssz" : "minmax";
    QuantizedLinear q = s_.v1 ? quantize_linear_weight_v1(l.module, l.scheme, l.weight, s_.fallback,
                                                          {.float_dtype = l.float_dtype})
                              : quantize_linear_weight(l.module, l.scheme, l.weight, l.bias, l.float_dtype);
    return {std::move(q), fmt::format("{}; quantized with {}", why, method)};
  }

  GptqSettings s_;
};

}  // namespace

std::shared_ptr<const WeightMethod> parse_gptq_weight(const StepInput& group, const io::yaml::MapReader& keys) {
  const io::yaml::Source& src = group.src;
  GptqSettings s;
  s.v1 = group.defaults.v1;
  if (!s.v1) s.fallback = V1WeightMethod::kMinMax;
  if (keys.has("gptq_dampening")) {
    s.dampening = src.as_number(keys.get("gptq_dampening"), keys.path("gptq_dampening"), 1e-6, 10.0);
  }
  if (keys.has("gptq_act_order")) {
    s.act_order = src.as_choice(keys.get("gptq_act_order"), keys.path("gptq_act_order"), {"true", "false"}) == "true";
  }
  if (keys.has("gptq_min_tokens")) {
    s.min_tokens = src.as_int(keys.get("gptq_min_tokens"), keys.path("gptq_min_tokens"), 1, INT_MAX);
  }
  if (keys.has("gptq_fallback")) {
    const std::vector<std::string> allowed = s.v1 ? std::vector<std::string>{"ssz", "minmax"}
                                                   : std::vector<std::string>{"minmax"};  // ssz is a v1 quantizer
    s.fallback = src.as_choice(keys.get("gptq_fallback"), keys.path("gptq_fallback"), allowed) == "ssz"
                     ? V1WeightMethod::kSsz
                     : V1WeightMethod::kMinMax;
  }
  return std::make_shared<Gptq>(s);
}

}  // namespace moeslim::quant
