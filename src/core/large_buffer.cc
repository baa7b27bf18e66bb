#include "core/large_buffer.h"

#include <sys/mman.h>

#include <cstdint>

namespace moeslim {
namespace {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// Whole huge pages: a tail shorter than 2 MiB would be backed by 4 KiB pages.
std::size_t mapped_length(std::size_t bytes) { return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes; }

}  // namespace

void* map_large_zeroed(std::size_t bytes) {
  const std::size_t length = mapped_length(bytes);
  void* raw = mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  // Give back the unaligned head and the tail beyond `length`.
  if (aligned > start) munmap(raw, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + length), start + kHugePageBytes - aligned);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, length, MADV_HUGEPAGE);  // advisory: without THP the memory is still correct
  return p;
}

void unmap_large(void* p, std::size_t bytes) {
  if (p != nullptr) munmap(p, mapped_length(bytes));
}

}  // namespace moeslim
