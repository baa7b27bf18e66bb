// `weight: ssz`: msModelSlim's least-squares refinement of the minmax scale (docs/msmodelslim-algorithms.md
// §6.4, v1_weight_quant.h), int8 or int4. A v1 quantizer: v0 recipes refuse it.
#include <climits>

#include "quant/step_registry.h"
#include "quant/v1_weight_quant.h"

namespace moeslim::quant {
namespace {

constexpr int kDefaultSteps = 50;  // msModelSlim's ext.step

class Ssz final : public WeightMethod {
 public:
  explicit Ssz(int steps) : steps_(steps) {}
  std::string name() const override { return "ssz"; }
  nlohmann::ordered_json settings() const override { return {{"method", "ssz"}, {"ssz_steps", steps_}}; }
  bool supports(QuantScheme s) const override { return v1_weight_quant_produces(s); }
  QuantizedWeight quantize(const LinearToQuantize& l) const override {
    return {quantize_linear_weight_v1(l.module, l.scheme, l.weight, V1WeightMethod::kSsz,
                                      {.float_dtype = l.float_dtype, .ssz_steps = steps_}),
            {}};
  }

 private:
  int steps_;
};

}  // namespace

std::shared_ptr<const WeightMethod> parse_ssz_weight(const StepInput& group, const io::yaml::MapReader& keys) {
  if (!group.defaults.v1) {
    group.src.fail(keys.path("weight"),
                   "weight ssz is a v1 quantizer (apiversion modelslim_v1); modelslim_v0 recipes use minmax",
                   keys.get("weight"));
  }
  int steps = kDefaultSteps;
  if (keys.has("ssz_steps")) {
    steps = static_cast<int>(group.src.as_int(keys.get("ssz_steps"), keys.path("ssz_steps"), 1, INT_MAX));
  }
  return std::make_shared<Ssz>(steps);
}

}  // namespace moeslim::quant
