// Static activation calibration (docs/msmodelslim-algorithms.md §4.4–4.5): every W8A8 (static) linear gets its
// input range from the quantized pass. Each calibration batch first updates the linear's running-mean observer,
// then is computed with the parameters as they stand (StaticCalibrationLinear), so with quantized propagation
// later layers are calibrated on what the earlier, already quantized layers output. q, k and v read one input,
// so their observers see the same rows and they end with one shared input scale and offset (the fused qkv_proj
// of vLLM-Ascend keeps a single one).
//
// The quantize step adds this step after itself when one of its groups is static; it has no recipe keys.
#pragma once

#include "quant/step.h"

namespace moeslim::quant {

class StaticCalibrationStep final : public LayerStep {
 public:
  std::string name() const override { return "static_calibration"; }
  nlohmann::ordered_json settings() const override { return nlohmann::ordered_json::object(); }
  std::string phase() const override { return "calibration"; }
  std::unique_ptr<CalibrationPass> calibration(const LayerContext& context) const override;
};

}  // namespace moeslim::quant
