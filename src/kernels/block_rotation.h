// The block products of a Hadamard-style rotation of weights: a k×k block m applied to rows from the right, or
// transposed to a block of rows from the left. Portable and AVX-512 paths (the latter where k is a multiple of
// 32) give the same bits: every output element is the same float32 sum, in the same order, of separate
// products (no fused multiply-add).
#pragma once

#include <cstdint>

namespace moeslim::kernels {

// y[r][0, k) = x[r][0, k) · m for `rows` rows `ld` apart (x and y alike), m a row-major k×k block:
// y[r][j] = ((0 + x[r][0]·m[0][j]) + x[r][1]·m[1][j]) + …
void right_multiply_block(const float* m, std::int64_t k, const float* x, std::int64_t rows, std::int64_t ld,
                          float* y);

// out[j][0, w) = Σ_i m[i][j] · in[i][0, w) for j < k, summed in i order; in and out hold k dense rows of w.
void left_multiply_block_transposed(const float* m, std::int64_t k, const float* in, std::int64_t w, float* out);

}  // namespace moeslim::kernels
