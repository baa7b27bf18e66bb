#include "model/forward_scratch.h"

#include <cstring>
#include <string>

#include "core/error.h"

namespace moeslim::model {

float* ForwardScratch::take(Slot slot, std::int64_t rows, std::int64_t cols, bool clear) {
  Tensor& t = slots_[slot];
  const std::size_t n = shape_numel({rows, cols});
  if (t.numel() < n) {
    t = Tensor();  // free the smaller buffer before taking the larger one
    t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(n)});
  } else if (clear) {
    std::memset(t.mutable_data<float>(), 0, n * sizeof(float));
  }
  return t.mutable_data<float>();
}

float* ForwardScratch::zeroed(Slot s, std::int64_t rows, std::int64_t cols) { return take(s, rows, cols, true); }

float* ForwardScratch::overwritten(Slot s, std::int64_t rows, std::int64_t cols) { return take(s, rows, cols, false); }

void ForwardScratch::prepare_workers(int count) {
  while (static_cast<int>(workers_.size()) < count) workers_.push_back(std::make_unique<ForwardScratch>());
}

ForwardScratch& ForwardScratch::worker(int index) {
  if (index < 0 || index >= static_cast<int>(workers_.size())) {
    throw Error(ErrorCode::kInternal, "forward scratch worker " + std::to_string(index) + " was not prepared");
  }
  return *workers_[static_cast<std::size_t>(index)];
}

}  // namespace moeslim::model
