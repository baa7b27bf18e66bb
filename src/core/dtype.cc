#include "core/dtype.h"

#include <string>

#include "core/error.h"
#include "core/half.h"

namespace moeslim {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
    case DType::kF16: return 2;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kI8:
    case DType::kU8: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kF32: return "F32";
    case DType::kI8: return "I8";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32, DType::kI8, DType::kI32, DType::kI64, DType::kU8}) {
    if (dtype_name(d) == name) return d;
  }
  return std::nullopt;
}

bool is_float_dtype(DType dtype) { return dtype == DType::kBF16 || dtype == DType::kF16 || dtype == DType::kF32; }

float round_to_float_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::kBF16: return round_to_bf16(value);
    case DType::kF16: return f16_to_f32(f32_to_f16(value));
    case DType::kF32: return value;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot round to " + std::string(dtype_name(dtype)) + ": not a float dtype (BF16, F16, F32)");
  }
}

}  // namespace moeslim
