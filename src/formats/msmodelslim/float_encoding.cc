#include "formats/msmodelslim/float_encoding.h"

#include <bit>
#include <cstring>
#include <string>

#include "core/error.h"

namespace moeslim::formats::msmodelslim {

Tensor encode_deq_scale(const Tensor& deq, DType model_dtype) {
  if (deq.dtype() != DType::kF32) {
    throw Error(ErrorCode::kInvalidArgument, "deq_scale must be F32, not " + std::string(dtype_name(deq.dtype())));
  }
  if (model_dtype != DType::kF16) return deq;
  Tensor out = Tensor::zeros(DType::kI64, deq.shape());
  auto* dst = out.mutable_data<std::int64_t>();
  const float* src = deq.data<float>();
  for (std::size_t i = 0; i < deq.numel(); ++i) {
    dst[i] = static_cast<std::int64_t>(static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(src[i])));
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
