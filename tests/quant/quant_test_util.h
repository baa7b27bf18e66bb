// Small helpers shared by the quantization tests: hand-made tensors and the spec's weight-quantization
// formula (docs/msmodelslim-algorithms.md §4.3) written out as a plain reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/half.h"
#include "core/tensor.h"

namespace moeslim::quant::testing {

inline constexpr float kEps32 = 1.1920928955078125e-07f;  // 2^-23

inline Tensor f32_matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& values) {
  Tensor t = Tensor::zeros(DType::kF32, {rows, cols});
  std::copy(values.begin(), values.end(), t.mutable_data<float>());
  return t;
}

inline Tensor f32_vector(const std::vector<float>& values) {
  Tensor t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(values.size())});
  std::copy(values.begin(), values.end(), t.mutable_data<float>());
  return t;
}

// The same values stored as BF16 (they must be bf16-representable for the tensor to be equal to the F32 one).
inline Tensor bf16_matrix(std::int64_t rows, std::int64_t cols, const std::vector<float>& values) {
  Tensor t = Tensor::zeros(DType::kBF16, {rows, cols});
  auto* p = t.mutable_data<std::uint16_t>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = f32_to_bf16(values[i]);
  return t;
}

// n values ~ N(0, sigma²) + mean, rounded to bf16.
inline std::vector<float> random_bf16_values(std::size_t n, std::mt19937& rng, float sigma, float mean = 0.0f) {
  std::normal_distribution<float> normal(mean, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = round_to_bf16(normal(rng));
  return v;
}

struct RefWeightQuant {
  std::vector<std::int8_t> codes;
  std::vector<float> scale;
};

// §4.3 literally: s_n = max(dt(max_k |W[n,k]| / 127), eps32); q = clamp(rne(dt(W / s_n)), −127, 127).
inline RefWeightQuant reference_weight_quant(const std::vector<float>& w, std::int64_t rows, std::int64_t cols,
                                             DType dt) {
  RefWeightQuant r;
  for (std::int64_t n = 0; n < rows; ++n) {
    float amax = 0.0f;
    for (std::int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::fabs(w[n * cols + k]));
    const float s = std::max(round_to_float_dtype(amax / 127.0f, dt), round_to_float_dtype(kEps32, dt));
    r.scale.push_back(s);
    for (std::int64_t k = 0; k < cols; ++k) {
      const float q = std::nearbyint(round_to_float_dtype(w[n * cols + k] / s, dt));
      r.codes.push_back(static_cast<std::int8_t>(std::clamp(q, -127.0f, 127.0f)));
    }
  }
  return r;
}

inline std::vector<std::int8_t> codes_of(const Tensor& t) {
  return {t.data<std::int8_t>(), t.data<std::int8_t>() + t.numel()};
}
inline std::vector<float> floats_of(const Tensor& t) {
  return {t.data<float>(), t.data<float>() + t.numel()};
}

}  // namespace moeslim::quant::testing
