#include "model/forward_scratch.h"

#include <cstring>

namespace moeslim::model {

float* ForwardScratch::zeroed(Slot slot, std::int64_t rows, std::int64_t cols) {
  Tensor& t = slots_[slot];
  const std::size_t n = shape_numel({rows, cols});
  if (t.numel() < n) {
    t = Tensor();  // free the smaller buffer before taking the larger one
    t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(n)});
  } else {
    std::memset(t.mutable_data<float>(), 0, n * sizeof(float));
  }
  return t.mutable_data<float>();
}

}  // namespace moeslim::model
