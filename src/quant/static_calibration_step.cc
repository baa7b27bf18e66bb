#include "quant/static_calibration_step.h"

#include <map>

#include "quant/calibration_linear.h"

namespace moeslim::quant {
namespace {

class StaticCalibrationPass final : public CalibrationPass {
 public:
  explicit StaticCalibrationPass(const RunSettings& settings) : settings_(settings) {}

  std::unique_ptr<model::Linear> linear_for(const model::ModuleId& module, const QuantizedLinear& q) override {
    if (q.scheme != QuantScheme::kW8A8) return nullptr;
    auto linear = std::make_unique<StaticCalibrationLinear>(q, settings_.include_padding, settings_.float_dtype);
    linears_[module] = linear.get();
    return linear;
  }

  bool wants_linear_input(const model::ModuleId& module) const override { return linears_.count(module) > 0; }
  // linears_ changes only between the pass's parallel parts (as linears are built or finished); a call changes
  // only its own module's linear.
  bool accepts_concurrent_modules() const override { return true; }

  void on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override {
    linears_.at(module)->observe(x, rows, cols, real);
  }

  void finish(LayerContext& context, const std::vector<model::ModuleId>& modules) override {
    for (const model::ModuleId& module : modules) {
      const auto it = linears_.find(module);
      if (it == linears_.end()) continue;
      context.linears.at(module) = it->second->quantized();
      linears_.erase(it);
    }
  }

 private:
  RunSettings settings_;
  std::map<model::ModuleId, StaticCalibrationLinear*> linears_;  // owned by the quantized layer
};

}  // namespace

std::unique_ptr<CalibrationPass> StaticCalibrationStep::calibration(const LayerContext& context) const {
  return std::make_unique<StaticCalibrationPass>(context.settings);
}

}  // namespace moeslim::quant
