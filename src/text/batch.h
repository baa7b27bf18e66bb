// Padded batches of token sequences for the calibration forward pass. Pad positions carry mask 0 and must
// never enter statistics; right padding is the Hugging Face default for Qwen (docs/qwen3-moe-forward.md §7.6).
#pragma once

#include <cstdint>
#include <vector>

namespace moeslim::text {

enum class PadSide { kRight, kLeft };

struct Batch {
  std::int64_t batch = 0;            // rows in this batch (the last batch may have fewer than batch_size)
  std::int64_t seq_len = 0;          // longest row after truncation
  std::vector<std::int32_t> ids;     // [batch * seq_len], row-major, pad_id at pad positions
  std::vector<std::uint8_t> mask;    // [batch * seq_len], 1 for a real token, 0 for padding
  std::vector<std::int32_t> lengths; // [batch], real tokens per row
};

// Groups `sequences` in input order into batches of `batch_size` rows, each padded to its own longest row.
// max_len > 0 keeps only the first max_len tokens of each sequence (0: no truncation); when `truncated` is
// given it receives how many sequences were cut. Throws Error(kInvalidArgument) when batch_size < 1 or
// max_len < 0.
std::vector<Batch> make_batches(const std::vector<std::vector<std::int32_t>>& sequences, int batch_size,
                                std::int32_t pad_id, PadSide side = PadSide::kRight, std::int64_t max_len = 0,
                                std::int64_t* truncated = nullptr);

}  // namespace moeslim::text
