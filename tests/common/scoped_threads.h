// The kernels' thread count for one test scope: set on entry, back to the library's default of 1 on exit
// (also when an assertion ends the test early), so no test leaks its count into the next.
#pragma once

#include "kernels/threading.h"

namespace moeslim::testing {

class ScopedThreads {
 public:
  explicit ScopedThreads(int n) { kernels::set_num_threads(n); }
  ~ScopedThreads() { kernels::set_num_threads(1); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
};

}  // namespace moeslim::testing
