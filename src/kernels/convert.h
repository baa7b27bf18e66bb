// Bulk float32 <-> bf16 conversions for activations, dispatched to AVX-512 when available.
// Bit-identical to core/half.h's scalar functions (round to nearest even, NaN stays NaN) on every path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moeslim::kernels {

void f32_to_bf16(const float* src, std::uint16_t* dst, std::size_t n);
void bf16_to_f32(const std::uint16_t* src, float* dst, std::size_t n);

// Rows of a strided float matrix [rows, cols] (row stride ld_src) to packed bf16 rows (row stride ld_dst).
void f32_to_bf16_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                      std::uint16_t* dst, std::int64_t ld_dst);

// Rows rounded to bf16 precision but kept as float32 (PyTorch's x.bfloat16().float()); dst may alias src.
void round_to_bf16_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src, float* dst,
                        std::int64_t ld_dst);

// Splits x into three bf16 terms with x ≈ hi + mid + lo, each term the bf16 rounding of what the previous
// terms left (the subtractions are exact). Together they carry all 24 significant bits of x (the error is
// below 2^-24 |x|), so a GEMM over the three terms against a bf16 weight is as exact as a float32 GEMM.
// Inf or NaN inputs give NaN terms. Output rows are packed (row stride cols).
void split_f32_to_bf16x3_rows(const float* src, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                              std::uint16_t* hi, std::uint16_t* mid, std::uint16_t* lo);

}  // namespace moeslim::kernels
