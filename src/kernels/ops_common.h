// Internal helpers shared by the op files: argument checks and the OpenMP row loop.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "kernels/threading.h"

namespace moeslim::kernels::detail {

inline void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kInvalidArgument, std::string(op) + ": " + what);
}

// Calls body(row) for every row, spread over the kernel threads when there is enough work to pay for it.
template <typename Body>
void for_each_row(std::int64_t rows, std::int64_t work_per_row, Body&& body) {
  apply_num_threads();
  const int threads = num_threads();
  // ~64k elements per parallel region: below that, waking a second thread costs more than it saves.
  const bool parallel = threads > 1 && rows > 1 && rows * work_per_row >= (std::int64_t{1} << 16);
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (std::int64_t r = 0; r < rows; ++r) body(r);
}

}  // namespace moeslim::kernels::detail
