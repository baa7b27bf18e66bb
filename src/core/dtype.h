// Element types of tensors as safetensors names them.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace moeslim {

enum class DType { kBF16, kF16, kF32, kI8, kI32, kI64, kU8 };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "BF16", "F16", "F32", "I8", "I32", "I64", "U8".
std::string_view dtype_name(DType dtype);
// Inverse of dtype_name; nullopt for a dtype moeslim does not handle (e.g. "F64", "F8_E4M3", "BOOL").
std::optional<DType> dtype_from_name(std::string_view name);

// BF16, F16 or F32.
bool is_float_dtype(DType dtype);

// `value` rounded to the nearest value of a float dtype (BF16/F16: to nearest, ties to even; F32: unchanged),
// returned as float32: PyTorch's "cast to the model dtype and back". kInvalidArgument for a non-float dtype.
float round_to_float_dtype(float value, DType dtype);

}  // namespace moeslim
