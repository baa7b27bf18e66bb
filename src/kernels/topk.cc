#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "kernels/ops_common.h"

namespace moeslim::kernels {
namespace {

// a ranks before b: the larger value first, NaN after every number.
bool ranks_before(float a, float b) {
  if (std::isnan(b)) return !std::isnan(a);
  return a > b;
}

// Keeps the best k seen so far, sorted. Elements arrive in index order and a newcomer moves ahead only of
// kept elements it strictly beats, so equal values stay in index order and a tie for the k-th place keeps
// the lower index. O(n) typical, O(n·k) worst: with 128 experts and k = 8, a few hundred compares per token.
void topk_row(const float* x, std::int64_t n, std::int64_t k, std::int32_t* idx, float* val) {
  std::int64_t kept = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (kept == k && !ranks_before(v, val[k - 1])) continue;
    std::int64_t pos = kept < k ? kept : k - 1;
    while (pos > 0 && ranks_before(v, val[pos - 1])) {
      val[pos] = val[pos - 1];
      idx[pos] = idx[pos - 1];
      --pos;
    }
    val[pos] = v;
    idx[pos] = static_cast<std::int32_t>(i);
    if (kept < k) ++kept;
  }
}

}  // namespace

void topk_rows(const float* x, std::int64_t rows, std::int64_t n, std::int64_t k, std::int32_t* indices,
               float* values) {
  detail::require(rows >= 0 && n >= 1 && k >= 1 && k <= n && (rows == 0 || (x && indices)), "topk_rows",
                  "need 1 <= k <= n, got k=" + std::to_string(k) + " n=" + std::to_string(n));
  std::vector<float> own_values;  // selection needs the values even when the caller does not
  if (values == nullptr) {
    own_values.resize(static_cast<std::size_t>(rows * k));
    values = own_values.data();
  }
  detail::for_each_row(rows, n, [&](std::int64_t r) { topk_row(x + r * n, n, k, indices + r * k, values + r * k); });
}

}  // namespace moeslim::kernels
