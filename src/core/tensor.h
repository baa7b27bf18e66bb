// A tensor: dtype, shape and bytes that are either owned or a view into memory kept alive by an owner
// (a memory-mapped safetensors file, say). Row-major, like safetensors and PyTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeslim {

using Shape = std::vector<std::int64_t>;

// Product of the dimensions; throws kInvalidArgument on a negative dimension or size_t overflow.
std::size_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[4096, 2048]"

// True once the allocator is set so freed large buffers go back to the OS (see tensor.cc); referenced by
// the streaming code so the setting is linked into every program.
bool large_allocations_return_to_os();

class Tensor {
 public:
  Tensor() = default;

  // A new zero-filled tensor that owns its bytes (64-byte aligned).
  static Tensor zeros(DType dtype, Shape shape);
  // A view of `data`; `owner` keeps the memory alive for as long as the tensor (or a copy of it) lives.
  static Tensor view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::size_t rank() const { return shape_.size(); }
  std::size_t numel() const { return numel_; }
  std::size_t nbytes() const { return numel_ * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr && numel_ == 0; }
  bool is_view() const { return !owned_; }

  const std::byte* bytes() const { return data_; }
  // Mutable access; throws kInternal on a view (mapped weights are read-only).
  std::byte* mutable_bytes();

  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(data_); }
  template <typename T>
  T* mutable_data() { return reinterpret_cast<T*>(mutable_bytes()); }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), numel_}; }

  // A float32 copy (exact from BF16/F16/F32/integers up to 2^24).
  Tensor to_f32() const;
  // Elements [begin, begin + count) of a BF16, F16 or F32 tensor as float32, into `out` (exact); streams a
  // large (e.g. mapped) weight row by row without a whole float32 copy. kInvalidArgument otherwise.
  void read_f32(std::size_t begin, std::size_t count, float* out) const;
  // An owned deep copy.
  Tensor clone() const;
  // Same bytes, another shape of equal element count.
  Tensor reshaped(Shape shape) const;

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  std::size_t numel_ = 0;
  std::shared_ptr<const void> owner_;
  std::byte* data_ = nullptr;
  bool owned_ = false;
};

}  // namespace moeslim
