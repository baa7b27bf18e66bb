#include "quant/calibration_linear.h"

#include "core/error.h"
#include "model/quantized_linear.h"
#include "quant/linear_quantizer.h"

namespace moeslim::quant {

StaticCalibrationLinear::StaticCalibrationLinear(QuantizedLinear weights, bool include_padding, DType float_dtype)
    : linear_(std::move(weights)), observer_(include_padding, float_dtype), float_dtype_(float_dtype) {
  if (linear_.scheme != QuantScheme::kW8A8 || linear_.weight.dtype() != DType::kI8 || linear_.weight.rank() != 2) {
    throw Error(ErrorCode::kInternal, "calibration linear needs W8A8 int8 codes", {},
                model::hf_module_name(linear_.module));
  }
}

void StaticCalibrationLinear::observe(const float* x, std::int64_t rows, std::int64_t cols,
                                      const std::uint8_t* real) {
  const std::int64_t before = observer_.batches();
  try {
    observer_.observe(x, rows, cols, real);
  } catch (const Error& e) {
    throw Error(e.code(), e.detail(), {}, model::hf_module_name(linear_.module) + " input");
  }
  if (observer_.batches() == before) return;  // a batch of padding only: parameters unchanged
  set_static_activation(linear_, observer_.params(), float_dtype_);
  runtime_ = model::make_w8a8_static_linear(linear_.weight, linear_.input_scale.data<float>()[0],
                                            linear_.input_offset.data<float>()[0], linear_.deq_scale,
                                            linear_.quant_bias);
}

void StaticCalibrationLinear::forward(const float* x, std::int64_t rows, float* y) const {
  if (runtime_ == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, "forward before any calibration batch was observed", {},
                model::hf_module_name(linear_.module));
  }
  runtime_->forward(x, rows, y);
}

const QuantizedLinear& StaticCalibrationLinear::quantized() const {
  if (runtime_ == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, "no calibration token reached this linear", {},
                model::hf_module_name(linear_.module));
  }
  return linear_;
}

}  // namespace moeslim::quant
