// Internal: the one-row softmax shared by softmax_rows and attention.
#pragma once

#include <cstdint>

namespace moeslim::kernels::detail {

// out[0..n) = softmax(in[0..n) · scale), computed as: v = in·scale (one float product), max of v, e = exp(v − max),
// sum of e in 16 fixed partial sums, out = e · (1/sum). -inf entries get probability 0. out may alias in.
// Dispatches on active_kernel_isa().
void softmax_row(const float* in, float* out, std::int64_t n, float scale);

}  // namespace moeslim::kernels::detail
