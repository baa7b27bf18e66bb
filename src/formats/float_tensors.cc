#include "formats/float_tensors.h"

#include <cmath>
#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"

namespace moeslim::formats {
namespace {

void check_float_dtype(DType dtype, const char* what) {
  if (!is_float_dtype(dtype)) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " must be BF16, F16 or F32, not " + std::string(dtype_name(dtype)));
  }
}

}  // namespace

Tensor to_float_dtype(const Tensor& t, DType dtype) {
  check_float_dtype(t.dtype(), "source tensor dtype");
  check_float_dtype(dtype, "target dtype");
  if (t.dtype() == dtype) return t;
  const Tensor f32 = t.dtype() == DType::kF32 ? t : t.to_f32();
  if (dtype == DType::kF32) return f32;
  Tensor out = Tensor::zeros(dtype, t.shape());
  const float* src = f32.data<float>();
  auto* dst = out.mutable_data<std::uint16_t>();
  if (dtype == DType::kBF16) {
    f32_to_bf16(src, dst, t.numel());
  } else {
    for (std::size_t i = 0; i < t.numel(); ++i) dst[i] = f32_to_f16(src[i]);
  }
  return out;
}

std::optional<std::size_t> first_inexact_element(const Tensor& t, DType dtype) {
  check_float_dtype(t.dtype(), "source tensor dtype");
  check_float_dtype(dtype, "target dtype");
  if (t.dtype() == dtype || dtype == DType::kF32) return std::nullopt;  // widening to F32 is always exact
  const Tensor f32 = t.dtype() == DType::kF32 ? t : t.to_f32();
  const float* v = f32.data<float>();
  for (std::size_t i = 0; i < t.numel(); ++i) {
    if (std::isnan(v[i])) continue;
    if (std::bit_cast<std::uint32_t>(round_to_float_dtype(v[i], dtype)) != std::bit_cast<std::uint32_t>(v[i])) return i;
  }
  return std::nullopt;
}

bool all_zero(const Tensor& t) {
  const Tensor f = t.to_f32();
  const float* p = f.data<float>();
  return std::all_of(p, p + f.numel(), [](float v) { return v == 0.0f; });
}

}  // namespace moeslim::formats
