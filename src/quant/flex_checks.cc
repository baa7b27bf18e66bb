#include "quant/flex_checks.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace moeslim::quant::flex {

[[noreturn]] void invalid(const std::string& role, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, role + ": " + what, {}, role);
}

// rows/cols < 0: any (but > 0). writable: the tensor is edited in place, so it must own its bytes.
void require_matrix(const Tensor& t, std::int64_t rows, std::int64_t cols, const std::string& role, bool writable) {
  const bool shape_ok = t.rank() == 2 && t.dim(0) > 0 && t.dim(1) > 0 && (rows < 0 || t.dim(0) == rows) &&
                        (cols < 0 || t.dim(1) == cols);
  if (t.dtype() != DType::kF32 || !shape_ok || (writable && t.is_view())) {
    invalid(role, std::string("expected ") + (writable ? "an owned " : "an ") + "F32 [" +
                      (rows < 0 ? "rows" : std::to_string(rows)) + ", " + (cols < 0 ? "cols" : std::to_string(cols)) +
                      "] tensor, got " + std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()));
  }
}

void require_vector(const Tensor& t, std::int64_t n, const std::string& role) {
  if (t.dtype() != DType::kF32 || t.rank() != 1 || t.dim(0) != n || t.is_view()) {
    invalid(role, "expected an owned F32 [" + std::to_string(n) + "] tensor, got " +
                      std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()));
  }
}

void require_size(const std::vector<float>& v, std::int64_t n, const std::string& role) {
  if (static_cast<std::int64_t>(v.size()) != n) {
    invalid(role, std::to_string(v.size()) + " channels, expected " + std::to_string(n));
  }
}

// msModelSlim validates α and β as normalized values.
void require_exponents(double alpha, double beta) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) invalid("alpha", "must lie in [0, 1], got " + std::to_string(alpha));
  if (!(beta >= 0.0 && beta <= 1.0)) invalid("beta", "must lie in [0, 1], got " + std::to_string(beta));
}

void require_float_dtype(DType dt) {
  if (!is_float_dtype(dt)) invalid("float_dtype", "not a float dtype: " + std::string(dtype_name(dt)));
}

// The same tensor listed twice would be scaled twice.
void require_distinct(const std::vector<Tensor*>& ts, const std::string& role) {
  std::set<const Tensor*> seen;
  for (const Tensor* t : ts) {
    if (t == nullptr) invalid(role, "null tensor");
    if (!seen.insert(t).second) invalid(role, "the same tensor is listed twice");
  }
}

// x^p as PyTorch's pow(tensor, scalar) computes it: the exponent reaches the kernel as a float32, and the
// exponents 0, 1, ±0.5, −1, 2, 3, −2 take exact shortcuts (fill, copy, sqrt, 1/sqrt, reciprocal, products)
// instead of std::pow. The same shortcut for 0.5 is m4_smoothing.cc's `power`.
float torch_pow(float x, float p) {
  if (p == 0.0f) return 1.0f;  // also 0^0 and 0^−0, as torch's fill
  if (p == 1.0f) return x;
  if (p == 0.5f) return std::sqrt(x);
  if (p == -0.5f) return 1.0f / std::sqrt(x);
  if (p == -1.0f) return 1.0f / x;
  if (p == 2.0f) return x * x;
  if (p == 3.0f) return x * x * x;
  if (p == -2.0f) return 1.0f / (x * x);
  return std::pow(x, p);
}

}  // namespace moeslim::quant::flex
