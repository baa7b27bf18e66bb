// How the rows of an activation matrix [N, hidden] map to sequences.
//
// Rows of all sequences are packed one after another. Each row is a real token or a pad. Positions count real
// tokens only (a row's position = number of real tokens before it in its sequence), so a left-padded prompt
// computes exactly what the unpadded prompt computes. A real query attends to the real keys at or before it; a
// pad query attends only to itself, so pads never influence real tokens (the convention of the PyTorch reference
// in tests/data/reference).
#pragma once

#include <cstdint>
#include <vector>

namespace moeslim::model {

struct SequenceSpan {
  std::int64_t begin = 0;   // first row
  std::int64_t length = 0;  // rows, pads included
};

struct TokenLayout {
  std::vector<SequenceSpan> sequences;
  std::vector<std::int64_t> positions;  // per row
  std::vector<std::uint8_t> real;       // per row: 1 real token, 0 pad

  std::int64_t rows() const { return static_cast<std::int64_t>(positions.size()); }
  std::int64_t real_rows() const;
  bool has_padding() const;

  // Appends one sequence; `mask` (1 real, 0 pad) may be empty for "all real".
  void add_sequence(std::int64_t length, const std::uint8_t* mask = nullptr);
};

// A packed layout of unpadded sequences of the given lengths.
TokenLayout packed_layout(const std::vector<std::int64_t>& lengths);

// Rows [begin, begin + layout.rows()) of a larger layout, as a layout of their own (positions kept).
struct LayoutChunk {
  std::int64_t begin = 0;
  TokenLayout layout;
};

// `layout` cut into chunks of whole sequences, in order: each takes sequences while it has fewer than
// max_sequences (<= 0: no limit) and they fit in max_rows rows (a longer sequence goes alone).
std::vector<LayoutChunk> split_into_chunks(const TokenLayout& layout, std::int64_t max_rows,
                                           std::int64_t max_sequences);

}  // namespace moeslim::model
