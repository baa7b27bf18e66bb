// A W8A8 (static) linear while it is being calibrated: msModelSlim's sequential fake-quant propagation
// (docs/msmodelslim-algorithms.md §4.5). Each calibration batch first updates the running-mean
// min/max observer with the batch (observe()), then is computed with the activation parameters as they
// stand after that update, so later layers are calibrated on what the earlier, already quantized layers
// output. The arithmetic is the runtime's (model/quantized_linear.h: int8 × int8 → int32, deq_scale,
// quant_bias) rather than a float emulation: after the last batch it is exactly what a loader computes.
#pragma once

#include <cstdint>
#include <memory>

#include "model/linear.h"
#include "quant/observers.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

class StaticCalibrationLinear final : public model::Linear {
 public:
  // `weights`: a kW8A8 QuantizedLinear with codes, weight_scale and bias (linear_quantizer.h).
  StaticCalibrationLinear(QuantizedLinear weights, bool include_padding, DType float_dtype);

  // One calibration batch of this linear's input (see MinMaxMeanObserver); call before forward() on it.
  void observe(const float* x, std::int64_t rows, std::int64_t cols, const std::uint8_t* real);

  std::int64_t in_features() const override { return linear_.weight.dim(1); }
  std::int64_t out_features() const override { return linear_.weight.dim(0); }
  // kInvalidArgument (naming the linear) if no batch has been observed yet.
  void forward(const float* x, std::int64_t rows, float* y) const override;
  std::string kind() const override { return "w8a8 (calibrating)"; }
  bool integer_arithmetic() const override { return true; }

  std::int64_t batches() const { return observer_.batches(); }
  // The linear with its final activation parameters, deq_scale and quant_bias.
  const QuantizedLinear& quantized() const;

 private:
  QuantizedLinear linear_;
  MinMaxMeanObserver observer_;
  DType float_dtype_;
  std::unique_ptr<model::Linear> runtime_;  // at the current parameters
};

}  // namespace moeslim::quant
