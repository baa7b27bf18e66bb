// The activation buffers of DecoderLayer::forward, kept from one call to the next.
//
// Large tensors are mmaps of their own (core/tensor.cc fixes the allocator's mmap threshold so that a freed
// layer goes back to the OS), so a buffer allocated per chunk or per expert is page-faulted in afresh every
// time. On 30B shapes that cost more than the GEMMs: perf put 35–45 % of a W8A8 run in the page-fault path
// and the zeroing. A pass over the calibration set therefore runs every chunk with one ForwardScratch, whose
// slots grow to the largest chunk and are then reused. A slot that is read before it is written in full (an
// accumulator) is handed out zeroed, as the fresh buffers were; one that a kernel overwrites in full (a GEMM's
// output, a norm's, a gather's) is handed out as it is, since clearing it cost a few percent of a pass.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace moeslim::model {

class ForwardScratch {
 public:
  enum Slot {
    kAttentionNormed,
    kQ,
    kK,
    kV,
    kContext,
    kAttentionOut,
    kMlpNormed,
    kMlpOut,
    kRouterLogits,
    kExpertInput,
    kExpertOutput,
    kGate,
    kUp,
    kSlotCount,
  };

  // rows·cols zeroed floats (64-byte aligned), valid until the same slot is asked for again.
  float* zeroed(Slot slot, std::int64_t rows, std::int64_t cols);
  // The same, but holding whatever the slot held last (zeros when new): for outputs written in full.
  float* overwritten(Slot slot, std::int64_t rows, std::int64_t cols);

  // Scratch of its own for each of `count` workers that run at once (experts in parallel); call before
  // they start. worker(i) for i < count may then be used from worker i's thread.
  void prepare_workers(int count);
  ForwardScratch& worker(int index);

 private:
  float* take(Slot slot, std::int64_t rows, std::int64_t cols, bool clear);  // both of the above

  std::array<Tensor, kSlotCount> slots_;
  std::vector<std::unique_ptr<ForwardScratch>> workers_;
};

}  // namespace moeslim::model
