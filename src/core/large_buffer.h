// Memory for large buffers, shared by Tensor and by the std::vectors of big scratch matrices (GPTQ's Hessians
// and factors: 16 MiB per expert at Qwen3-30B-A3B shapes, made afresh for hundreds of experts per layer).
//
// From kOwnMappingBytes up a buffer is an anonymous mapping of its own, aligned to 2 MiB, a whole number of
// 2 MiB pages long and marked MADV_HUGEPAGE, so the kernel backs all of it with transparent huge pages where it
// can (Linux's default "madvise" mode gives them only to regions that ask, and only to whole aligned 2 MiB
// ranges). A first touch of a 4 KiB page costs ~12 µs in this project's VMs (README, Performance), so a 16 MiB
// buffer in 4 KiB pages takes 4096 faults, ~50 ms; in 2 MiB pages, eight.
// The memory is zero-filled by the kernel and goes back to the OS when freed, whatever glibc's heap does.
// Why from 1 MiB: an expert's int8 codes at Qwen3-30B-A3B shapes are 1.5 MiB, 384 per layer. From glibc's heap
// (per-thread arenas made afresh) they took ~150,000 faults of 4 KiB per 2-layer 30B W8A8 run (`perf record -e
// page-faults --call-graph dwarf moeslim quant …`), and the arenas kept freed layers: at 1 MiB (rounded up to
// 2 MiB) that run's peak RSS fell from 2.94 to 2.40 GiB and its writing from 1.3 to 0.13 s per layer
// (bench/quant_bench; README, Performance).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace moeslim {

inline constexpr std::size_t kOwnMappingBytes = std::size_t{1} << 20;

// A zero-filled mapping of at least `bytes` (≥ 1), its start 2 MiB aligned; nullptr if the system refused.
void* map_large_zeroed(std::size_t bytes);
// Unmaps what map_large_zeroed(bytes) returned.
void unmap_large(void* p, std::size_t bytes);

// A std::allocator that takes large blocks from map_large_zeroed and the rest from operator new (64-byte
// aligned). Stateless: any two compare equal.
template <typename T>
struct LargeBufferAllocator {
  using value_type = T;
  LargeBufferAllocator() = default;
  template <typename U>
  LargeBufferAllocator(const LargeBufferAllocator<U>&) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= kOwnMappingBytes) {
      void* p = map_large_zeroed(bytes);
      if (p == nullptr) throw std::bad_alloc();
      return static_cast<T*>(p);
    }
    return static_cast<T*>(::operator new(bytes, std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= kOwnMappingBytes) {
      unmap_large(p, bytes);
    } else {
      ::operator delete(p, std::align_val_t{64});
    }
  }
  template <typename U>
  bool operator==(const LargeBufferAllocator<U>&) const { return true; }
};

// A vector whose storage, when large, is a huge-page mapping of its own.
template <typename T>
using LargeVector = std::vector<T, LargeBufferAllocator<T>>;

}  // namespace moeslim
