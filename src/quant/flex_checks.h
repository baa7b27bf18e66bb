// What flex smoothing's scales (flex_smoothing.cc) and its α/β search (flex_search.cc) share: argument checks
// that throw kInvalidArgument naming the tensor's role (also as the error's field), and PyTorch's pow.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace moeslim::quant::flex {

[[noreturn]] void invalid(const std::string& role, const std::string& what);
// An F32 [rows, cols] matrix (rows/cols < 0: any, but > 0). writable: it is edited in place, so it must own
// its bytes.
void require_matrix(const Tensor& t, std::int64_t rows, std::int64_t cols, const std::string& role, bool writable);
// An owned F32 [n] vector.
void require_vector(const Tensor& t, std::int64_t n, const std::string& role);
void require_size(const std::vector<float>& v, std::int64_t n, const std::string& role);
// α, β ∈ [0, 1]: msModelSlim validates them as normalized values.
void require_exponents(double alpha, double beta);
void require_float_dtype(DType dt);
// No tensor listed twice (it would be scaled twice) and none null.
void require_distinct(const std::vector<Tensor*>& ts, const std::string& role);

// x^p as PyTorch's pow(tensor, scalar) computes it: the exponent reaches the kernel as a float32, and the
// exponents 0, 1, ±0.5, −1, 2, 3, −2 take exact shortcuts (fill, copy, sqrt, 1/sqrt, reciprocal, products)
// instead of std::pow. The same shortcut for 0.5 is m4_smoothing.cc's `power`.
float torch_pow(float x, float p);

}  // namespace moeslim::quant::flex
