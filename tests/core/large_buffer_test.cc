#include "core/large_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/tensor.h"

namespace moeslim {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t whole_huge_pages(std::size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

// The mapping (from /proc/self/smaps) that starts at `p`: its length and whether it asked for huge pages
// (VmFlags "hg", set by MADV_HUGEPAGE). length 0 when no mapping starts there.
struct Mapping {
  std::size_t length = 0;
  bool huge_page_advice = false;
};

Mapping mapping_at(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  Mapping found;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin == reinterpret_cast<std::uintptr_t>(p);
      if (inside) found.length = end - begin;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) {
      found.huge_page_advice = (line + " ").find(" hg ") != std::string::npos;
      return found;
    }
  }
  return found;
}

bool smaps_readable() { return std::ifstream("/proc/self/smaps").good(); }

bool kernel_has_transparent_huge_pages() {
  return std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled");
}

TEST(LargeBuffer, MappingsAreWholeAlignedHugePagesOfZeros) {
  if (!smaps_readable()) GTEST_SKIP() << "/proc/self/smaps cannot be read here";
  for (const std::size_t bytes : {std::size_t{1}, kOwnMappingBytes + 1, 3 * kHugePage + 4096}) {
    SCOPED_TRACE(bytes);
    auto* p = static_cast<unsigned char*>(map_large_zeroed(bytes));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePage, 0u);
    // Whole 2 MiB pages: a shorter tail would be backed by 4 KiB pages, each first touch a fault.
    const Mapping m = mapping_at(p);
    EXPECT_EQ(m.length, whole_huge_pages(bytes));
    if (kernel_has_transparent_huge_pages()) {
      EXPECT_TRUE(m.huge_page_advice);
    }
    bool zero = true;
    for (std::size_t i = 0; i < whole_huge_pages(bytes); i += 4096) zero = zero && p[i] == 0;
    EXPECT_TRUE(zero);
    p[whole_huge_pages(bytes) - 1] = 7;  // the whole length is writable
    unmap_large(p, bytes);
    EXPECT_EQ(mapping_at(p).length, 0u);
  }
}

// An expert's int8 codes at Qwen3-30B-A3B shapes (768 × 2048, 1.5 MiB) are a mapping of their own, not glibc
// heap memory: 384 of them per layer, each made afresh.
TEST(LargeBuffer, TensorsFromOneMebibyteHaveAHugePageMappingOfTheirOwn) {
  if (!smaps_readable()) GTEST_SKIP() << "/proc/self/smaps cannot be read here";
  Tensor codes = Tensor::zeros(DType::kI8, {768, 2048});
  const Mapping m = mapping_at(codes.data<std::int8_t>());
  EXPECT_EQ(m.length, kHugePage);
  if (kernel_has_transparent_huge_pages()) {
    EXPECT_TRUE(m.huge_page_advice);
  }

  Tensor small = Tensor::zeros(DType::kI8, {static_cast<std::int64_t>(kOwnMappingBytes) - 64});
  EXPECT_EQ(mapping_at(small.data<std::int8_t>()).length, 0u);  // from the heap
}

TEST(LargeBuffer, VectorsUseTheMappingOnlyWhenLarge) {
  if (!smaps_readable()) GTEST_SKIP() << "/proc/self/smaps cannot be read here";
  LargeVector<float> big(kOwnMappingBytes / sizeof(float));
  EXPECT_EQ(mapping_at(big.data()).length, kHugePage);
  LargeVector<float> small(16);
  EXPECT_EQ(mapping_at(small.data()).length, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small.data()) % 64, 0u);
}

}  // namespace
}  // namespace moeslim
