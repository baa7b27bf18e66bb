// The process's memory as the kernel counts it.
#pragma once

#include <cstdint>

namespace moeslim {

// Peak resident set size of this process so far, in bytes (getrusage's ru_maxrss).
std::uint64_t peak_rss_bytes();

// Resident set size of this process now, in bytes (/proc/self/statm); 0 where that cannot be read.
std::uint64_t current_rss_bytes();

}  // namespace moeslim
