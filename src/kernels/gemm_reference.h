// Naive reference GEMMs for tests: Y = X·Wᵀ with double accumulation (float forms) or exact int64
// accumulation (integer forms). Slow on purpose: every product in the obvious order.
#pragma once

#include <cstdint>

namespace moeslim::kernels {

// x: [m, k] row stride ldx; w: [n, k] row stride ldw (bf16 or float32); y: [m, n] row stride ldy.
void reference_gemm(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const std::uint16_t* w_bf16,
                    std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy);
void reference_gemm(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const float* w,
                    std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy);
// The same, writing the double sums (for error measurements finer than a float rounding).
void reference_gemm_f64(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::uint16_t* w_bf16, std::int64_t n, std::int64_t ldw, double* y);

// Integer: exact sums; throws kInternal if one does not fit in int32.
void reference_gemm_s32(const std::uint8_t* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::int8_t* w, std::int64_t n, std::int64_t ldw, std::int32_t* y, std::int64_t ldy);
void reference_gemm_s32(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::int8_t* w, std::int64_t n, std::int64_t ldw, std::int32_t* y, std::int64_t ldy);

}  // namespace moeslim::kernels
