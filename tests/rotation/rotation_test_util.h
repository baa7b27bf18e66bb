// Dense double-precision helpers for checking the --rot matrices and products against naive constructions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"

namespace moeslim::quant {

using Dense = std::vector<double>;  // n×n row-major

inline Dense to_dense(const Tensor& t) {
  const Tensor f = t.to_f32();
  return Dense(f.data<float>(), f.data<float>() + f.numel());
}

inline Dense matmul(const Dense& a, const Dense& b, std::int64_t n) {
  Dense c(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < n; ++k)
      for (std::int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

inline Dense transpose(const Dense& a, std::int64_t n) {
  Dense t(a.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) t[j * n + i] = a[i * n + j];
  return t;
}

// max |R·Rᵀ − I|.
inline double orthogonality_error(const Dense& r, std::int64_t n) {
  const Dense p = matmul(r, transpose(r, n), n);
  double worst = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) worst = std::max(worst, std::fabs(p[i * n + j] - (i == j ? 1.0 : 0.0)));
  return worst;
}

// Gaussian values already on the bf16 grid, so the F32 and BF16 versions of one seed hold the same numbers.
inline Tensor random_matrix(DType dtype, std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Tensor t = Tensor::zeros(DType::kF32, {rows, cols});
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = round_to_bf16(dist(gen));
  if (dtype == DType::kF32) return t;
  Tensor b = Tensor::zeros(DType::kBF16, {rows, cols});
  f32_to_bf16(t.data<float>(), b.mutable_data<std::uint16_t>(), t.numel());
  return b;
}

}  // namespace moeslim::quant
