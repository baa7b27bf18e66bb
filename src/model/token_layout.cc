#include "model/token_layout.h"

#include <algorithm>

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

}  // namespace moeslim::model
