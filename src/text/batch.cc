#include "text/batch.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace moeslim::text {

std::vector<Batch> make_batches(const std::vector<std::vector<std::int32_t>>& sequences, int batch_size,
                                std::int32_t pad_id, PadSide side, std::int64_t max_len, std::int64_t* truncated) {
  if (batch_size < 1) {
    throw Error(ErrorCode::kInvalidArgument, "must be at least 1, got " + std::to_string(batch_size), "", "batch_size");
  }
  if (max_len < 0) throw Error(ErrorCode::kInvalidArgument, "must be 0 (no limit) or positive", "", "max_len");

  std::vector<Batch> batches;
  batches.reserve((sequences.size() + static_cast<std::size_t>(batch_size) - 1) / static_cast<std::size_t>(batch_size));
  std::int64_t cut = 0;
  for (std::size_t first = 0; first < sequences.size(); first += static_cast<std::size_t>(batch_size)) {
    const std::size_t rows = std::min(sequences.size() - first, static_cast<std::size_t>(batch_size));
    Batch b;
    b.batch = static_cast<std::int64_t>(rows);
    b.lengths.resize(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      std::int64_t len = static_cast<std::int64_t>(sequences[first + r].size());
      if (max_len > 0 && len > max_len) {
        len = max_len;
        ++cut;
      }
      b.lengths[r] = static_cast<std::int32_t>(len);
      b.seq_len = std::max(b.seq_len, len);
    }
    const auto width = static_cast<std::size_t>(b.seq_len);
    b.ids.assign(rows * width, pad_id);
    b.mask.assign(rows * width, 0);
    for (std::size_t r = 0; r < rows; ++r) {
      const auto len = static_cast<std::size_t>(b.lengths[r]);
      const std::size_t offset = r * width + (side == PadSide::kLeft ? width - len : 0);
      const std::vector<std::int32_t>& seq = sequences[first + r];
      std::copy_n(seq.begin(), len, b.ids.begin() + static_cast<std::ptrdiff_t>(offset));
      std::fill_n(b.mask.begin() + static_cast<std::ptrdiff_t>(offset), len, std::uint8_t{1});
    }
    batches.push_back(std::move(b));
  }
  if (truncated != nullptr) *truncated = cut;
  return batches;
}

}  // namespace moeslim::text
