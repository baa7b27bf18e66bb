// A linear layer y = x·Wᵀ + b as the decoder sees it. Float weights, fake-quantized weights and the runtime's
// integer kernels all sit behind this one interface, so the same forward code runs the float model, the model
// being calibrated and a quantized output directory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "kernels/gemm.h"

namespace moeslim::model {

class Linear {
 public:
  virtual ~Linear() = default;
  virtual std::int64_t in_features() const = 0;
  virtual std::int64_t out_features() const = 0;
  // y[rows, out_features] = x[rows, in_features] · Wᵀ (+ bias). Row-major float32; y must not alias x.
  virtual void forward(const float* x, std::int64_t rows, float* y) const = 0;
  // What kind of arithmetic runs (for reports): "bf16", "f32", "w8a8", "w8a8_dynamic", "w4a8_dynamic".
  virtual std::string kind() const = 0;
  // Whether the GEMM is integer (int8) arithmetic, for comparing its time with the int8 peak.
  virtual bool integer_arithmetic() const { return false; }
};

// How float weights are multiplied: kF32 matches a float32 reference to ~1e-6; kBF16 rounds the activations to
// bf16 and runs a bf16 GEMM (about 2x faster, ~1e-3 relative error).
enum class FloatPrecision { kF32, kBF16 };
// The kernels' GEMM precision for it (also what a float pass's other products use: GPTQ's Hessians).
kernels::GemmPrecision gemm_precision(FloatPrecision precision);

// A float linear over a [out, in] weight in BF16, F16 or F32 (a view into a mapped checkpoint is fine) and an
// optional F32 [out] bias (empty Tensor for none).
std::unique_ptr<Linear> make_float_linear(Tensor weight, Tensor bias, FloatPrecision precision);

}  // namespace moeslim::model
