// `weight: minmax`: per-channel symmetric scales from each row's max |W|. Which formulas depends on the recipe's
// apiversion: v0's (docs/msmodelslim-algorithms.md §4.3, linear_quantizer.h; int8 only, the bias kept) or v1's
// (§6.4, v1_weight_quant.h; int8 or int4, no bias). v1's W4A16 rounds to nearest on its group grid
// (w4a16_weight.h).
#include "quant/linear_quantizer.h"
#include "quant/step_registry.h"
#include "quant/v1_weight_quant.h"
#include "quant/w4a16_weight.h"

namespace moeslim::quant {
namespace {

class MinMaxV0 final : public WeightMethod {
 public:
  std::string name() const override { return "minmax"; }
  nlohmann::ordered_json settings() const override { return {{"method", "minmax"}, {"formulas", "v0"}}; }
  bool supports(QuantScheme s) const override { return s == QuantScheme::kW8A8 || s == QuantScheme::kW8A8Dynamic; }
  QuantizedWeight quantize(const LinearToQuantize& l) const override {
    return {quantize_linear_weight(l.module, l.scheme, l.weight, l.bias, l.float_dtype), {}};
  }
};

class MinMaxV1 final : public WeightMethod {
 public:
  std::string name() const override { return "minmax"; }
  nlohmann::ordered_json settings() const override { return {{"method", "minmax"}, {"formulas", "v1"}}; }
  bool supports(QuantScheme s) const override { return v1_weight_quant_produces(s) || s == QuantScheme::kW4A16; }
  QuantizedWeight quantize(const LinearToQuantize& l) const override {
    if (l.scheme == QuantScheme::kW4A16) return {quantize_w4a16_minmax(l.module, l.weight, l.grid, l.float_dtype), {}};
    return {quantize_linear_weight_v1(l.module, l.scheme, l.weight, V1WeightMethod::kMinMax,
                                      {.float_dtype = l.float_dtype}),
            {}};
  }
};

}  // namespace

std::shared_ptr<const WeightMethod> parse_minmax_weight(const StepInput& group, const io::yaml::MapReader&) {
  if (group.defaults.v1) return std::make_shared<MinMaxV1>();
  return std::make_shared<MinMaxV0>();
}

}  // namespace moeslim::quant
