// Internal: how a GEMM's M rows are split into calls.
//
// Every distinct M is its own oneDNN primitive, and each holds its JIT-compiled kernels: measured ≈40 KB (f32)
// and ≈170 KB (AMX bf16) per primitive. MoE experts see a different row count on every call, so one primitive
// per M would grow without bound (2000 M values cost 570 MB in a test). Calls therefore use M from a small set:
//   full chunks of `chunk` rows (a multiple of 64, at most 512: as fast as larger M, measured),
//   then the remainder's multiple of 64,
//   then a tail of < 64 rows padded with zero rows to a multiple of 16 (the caller stages it through buffers).
// That is at most 1 + 7 + 4 = 12 primitives per weight shape, whatever the M.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace moeslim::kernels::detail {

struct RowBlock {
  std::int64_t begin = 0;
  std::int64_t rows = 0;         // real rows
  std::int64_t padded_rows = 0;  // the M the GEMM runs with; > rows only for the tail
  bool padded() const { return padded_rows != rows; }
};

inline constexpr std::int64_t kRowGranule = 64;
inline constexpr std::int64_t kTailGranule = 16;

// chunk rows for a GEMM whose rows are `row_elements` wide (K, or max(K, N) when both are staged):
// about 2M elements per chunk so staging buffers stay a few MB.
inline std::int64_t chunk_rows(std::int64_t row_elements) {
  constexpr std::int64_t kChunkElements = std::int64_t{1} << 21;
  const std::int64_t rows = kChunkElements / std::max<std::int64_t>(row_elements, 1);
  return std::clamp<std::int64_t>(rows / kRowGranule * kRowGranule, kRowGranule, 512);
}

inline std::vector<RowBlock> plan_row_blocks(std::int64_t m, std::int64_t chunk) {
  std::vector<RowBlock> blocks;
  std::int64_t begin = 0;
  for (; begin + chunk <= m; begin += chunk) blocks.push_back({begin, chunk, chunk});
  const std::int64_t bulk = (m - begin) / kRowGranule * kRowGranule;
  if (bulk > 0) {
    blocks.push_back({begin, bulk, bulk});
    begin += bulk;
  }
  const std::int64_t tail = m - begin;
  if (tail > 0) {
    // A tail that is already a multiple of 16 needs no padding.
    blocks.push_back({begin, tail, (tail + kTailGranule - 1) / kTailGranule * kTailGranule});
  }
  return blocks;
}

}  // namespace moeslim::kernels::detail
