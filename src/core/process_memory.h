// The process's memory as the kernel counts it.
#pragma once

#include <cstdint>

namespace moeslim {

// Peak resident set size of this process so far, in bytes (getrusage's ru_maxrss).
std::uint64_t peak_rss_bytes();

}  // namespace moeslim
