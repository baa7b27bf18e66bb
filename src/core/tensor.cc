#include "core/tensor.h"

#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "core/large_buffer.h"

namespace moeslim {
namespace {

// glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), after which blocks
// of a layer's size (a few MiB per expert weight) come from the heap and fragment it: freed layers are not
// returned to the OS and peak RSS grows with depth. Fixing the threshold keeps every large buffer an
// mmap of its own, so a layer's memory goes back to the OS when the layer is freed (measured: 6 layers of
// Qwen3-30B-A3B shapes went from +0.6 GiB per layer to flat).
const bool g_fixed_mmap_threshold = [] { return mallopt(M_MMAP_THRESHOLD, 2 * 1024 * 1024) == 1; }();

}  // namespace

bool large_allocations_return_to_os() { return g_fixed_mmap_threshold; }

std::size_t shape_numel(const Shape& shape) {
  std::size_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw Error(ErrorCode::kInvalidArgument, "negative dimension in shape " + shape_to_string(shape));
    const auto u = static_cast<std::size_t>(d);
    if (u != 0 && n > std::numeric_limits<std::size_t>::max() / u) {
      throw Error(ErrorCode::kInvalidArgument, "element count of shape " + shape_to_string(shape) + " overflows");
    }
    n *= u;
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  const std::size_t bytes = t.numel_ * dtype_size(dtype);
  const auto out_of_memory = [&] {
    return Error(ErrorCode::kIo, "out of memory allocating " + std::to_string(bytes) + " bytes for a tensor of shape " +
                                     shape_to_string(t.shape_));
  };
  void* p = nullptr;
  if (bytes >= kOwnMappingBytes) {  // a huge-page mapping of its own (core/large_buffer.h)
    p = map_large_zeroed(bytes);
    if (p == nullptr) throw out_of_memory();
    t.owner_ = std::shared_ptr<const void>(p, [bytes](const void* q) { unmap_large(const_cast<void*>(q), bytes); });
  } else {
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) throw out_of_memory();
    std::memset(p, 0, rounded == 0 ? 64 : rounded);
    t.owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  }
  t.data_ = static_cast<std::byte*>(p);
  t.owned_ = true;
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.owner_ = std::move(owner);
  t.data_ = const_cast<std::byte*>(static_cast<const std::byte*>(data));
  t.owned_ = false;
  return t;
}

std::byte* Tensor::mutable_bytes() {
  if (!owned_) throw Error(ErrorCode::kInternal, "attempt to write through a read-only tensor view");
  return data_;
}

Tensor Tensor::to_f32() const {
  Tensor out = zeros(DType::kF32, shape_);
  float* dst = out.mutable_data<float>();
  switch (dtype_) {
    case DType::kF32: std::memcpy(dst, data_, nbytes()); break;
    case DType::kBF16: bf16_to_f32(data<std::uint16_t>(), dst, numel_); break;
    case DType::kF16: f16_to_f32(data<std::uint16_t>(), dst, numel_); break;
    case DType::kI8: for (std::size_t i = 0; i < numel_; ++i) dst[i] = data<std::int8_t>()[i]; break;
    case DType::kU8: for (std::size_t i = 0; i < numel_; ++i) dst[i] = data<std::uint8_t>()[i]; break;
    case DType::kI32: for (std::size_t i = 0; i < numel_; ++i) dst[i] = static_cast<float>(data<std::int32_t>()[i]); break;
    case DType::kI64: for (std::size_t i = 0; i < numel_; ++i) dst[i] = static_cast<float>(data<std::int64_t>()[i]); break;
  }
  return out;
}

void Tensor::read_f32(std::size_t begin, std::size_t count, float* out) const {
  if (begin > numel_ || count > numel_ - begin) {
    throw Error(ErrorCode::kInvalidArgument, "read_f32: elements [" + std::to_string(begin) + ", +" +
                                                 std::to_string(count) + ") outside " + shape_to_string(shape_));
  }
  switch (dtype_) {
    case DType::kF32: std::memcpy(out, data<float>() + begin, count * sizeof(float)); return;
    case DType::kBF16: bf16_to_f32(data<std::uint16_t>() + begin, out, count); return;
    case DType::kF16: f16_to_f32(data<std::uint16_t>() + begin, out, count); return;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  "read_f32: not a float tensor (" + std::string(dtype_name(dtype_)) + ")");
  }
}

Tensor Tensor::clone() const {
  Tensor out = zeros(dtype_, shape_);
  if (nbytes() != 0) std::memcpy(out.data_, data_, nbytes());
  return out;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel_) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot reshape " + shape_to_string(shape_) + " to " + shape_to_string(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace moeslim
