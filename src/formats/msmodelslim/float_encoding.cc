#include "formats/msmodelslim/float_encoding.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"

namespace moeslim::formats::msmodelslim {
namespace {

void check_float_dtype(DType dtype, const char* what) {
  if (!is_float_dtype(dtype)) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " must be BF16, F16 or F32, not " + std::string(dtype_name(dtype)));
  }
}

std::uint32_t f32_bits(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
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
    if (f32_bits(round_to_float_dtype(v[i], dtype)) != f32_bits(v[i])) return i;
  }
  return std::nullopt;
}

Tensor encode_deq_scale(const Tensor& deq, DType model_dtype) {
  if (deq.dtype() != DType::kF32) {
    throw Error(ErrorCode::kInvalidArgument, "deq_scale must be F32, not " + std::string(dtype_name(deq.dtype())));
  }
  if (model_dtype != DType::kF16) return deq;
  Tensor out = Tensor::zeros(DType::kI64, deq.shape());
  auto* dst = out.mutable_data<std::int64_t>();
  const float* src = deq.data<float>();
  for (std::size_t i = 0; i < deq.numel(); ++i) {
    dst[i] = static_cast<std::int64_t>(static_cast<std::int32_t>(f32_bits(src[i])));
  }
  return out;
}

std::optional<float> decode_int64_deq_scale(std::int64_t stored) {
  if (stored < INT32_MIN || stored > INT32_MAX) return std::nullopt;
  const auto bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(stored));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace moeslim::formats::msmodelslim
