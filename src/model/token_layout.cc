#include "model/token_layout.h"

#include <algorithm>
#include <cstring>

namespace moeslim::model {

std::int64_t TokenLayout::real_rows() const {
  return static_cast<std::int64_t>(std::count(real.begin(), real.end(), std::uint8_t{1}));
}

bool TokenLayout::has_padding() const { return real_rows() != rows(); }

void TokenLayout::add_sequence(std::int64_t length, const std::uint8_t* mask) {
  sequences.push_back({rows(), length});
  std::int64_t position = 0;
  for (std::int64_t i = 0; i < length; ++i) {
    const std::uint8_t is_real = mask == nullptr ? 1 : (mask[i] != 0 ? 1 : 0);
    positions.push_back(position);
    real.push_back(is_real);
    position += is_real;
  }
}

TokenLayout packed_layout(const std::vector<std::int64_t>& lengths) {
  TokenLayout layout;
  for (std::int64_t n : lengths) layout.add_sequence(n);
  return layout;
}

std::vector<LayoutChunk> split_into_chunks(const TokenLayout& layout, std::int64_t max_rows,
                                           std::int64_t max_sequences) {
  if (max_sequences <= 0) max_sequences = static_cast<std::int64_t>(layout.sequences.size());
  std::vector<LayoutChunk> chunks;
  std::size_t s = 0;
  while (s < layout.sequences.size()) {
    LayoutChunk chunk;
    chunk.begin = layout.sequences[s].begin;
    std::int64_t rows = 0;
    std::int64_t count = 0;
    while (s < layout.sequences.size() && count < max_sequences &&
           (rows == 0 || rows + layout.sequences[s].length <= max_rows)) {
      const SequenceSpan& span = layout.sequences[s];
      chunk.layout.add_sequence(span.length, layout.real.data() + span.begin);
      // Keep the caller's positions (they may not start at 0 for continued sequences).
      std::memcpy(chunk.layout.positions.data() + rows, layout.positions.data() + span.begin,
                  static_cast<std::size_t>(span.length) * sizeof(std::int64_t));
      rows += span.length;
      ++s;
      ++count;
    }
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

}  // namespace moeslim::model
