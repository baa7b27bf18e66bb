// Row kernels of quantization: integer codes of a row from a scale (or of a vector with a scale per element), the
// error sums of a code choice, the activation rows of the int8 linears and their dequantisation. Each has a
// portable path and an AVX-512 path, chosen at run time (cpu_features.h); both give the same bits on every input.
//
// dt(·) is the rounding to the model's float dtype, to nearest, ties to even, returned as float32 (PyTorch's
// cast to the dtype and back): BF16 and F16 round, F32 rounds nothing. rne(·) rounds half to even.
// The `dtype` arguments must be BF16, F16 or F32 (kInvalidArgument otherwise).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moeslim::kernels {

// The integer codes of a quantizer: int8 [−128, 127], symmetric int8 [−127, 127], int4 [−8, 7].
struct CodeRange {
  float lo;
  float hi;
};

// codes[i] = clamp(rne(dt(x[i] / scale)), lo, hi). x holds no NaN.
void quantize_row_codes(const float* x, std::int64_t n, float scale, DType dtype, CodeRange range,
                        std::int8_t* codes);

// The codes of a vector whose elements each have their own scale and zero point (GPTQ quantizes a column of a
// weight, one element per output row): codes[i] = clamp(rne(dt(x[i] / scale[i])) + zero[i], lo, hi), computed as
// rne(clamp(dt(x[i] / scale[i]), lo − zero[i], hi − zero[i])) + zero[i] (the same, zero points being integers),
// so with zero[i] = 0 exactly quantize_row_codes' code of x[i] for scale[i]. When residual is not null, also
// residual[i] = base[i] − (codes[i] − zero[i])·scale[i] in float32 (base: the value the codes stand for, which
// need not be x). x holds no NaN; scales are positive.
void quantize_codes_elementwise(const float* x, const float* scale, const float* zero, std::int64_t n, DType dtype,
                                CodeRange range, std::int8_t* codes, const float* base = nullptr,
                                float* residual = nullptr);

// Sums over a row of what the codes q = clamp(rne(dt(w / scale)), lo, hi) leave behind, each in float32 over
// 16 interleaved partial sums (element i goes to partial i mod 16) combined pairwise (scalar_math.h's
// reduce_lanes), the same order on every path:
struct CodeErrorSums {
  float squared_error;  // Σ (w − dt(q·scale))²
  float wq;             // Σ dt(w·q)
  float qq;             // Σ dt(q·q)
};
CodeErrorSums code_error_sums(const float* w, std::int64_t n, float scale, DType dtype, CodeRange range);

// Symmetric int8 of the row v = dt(src / sigma) (divide) or dt(src · sigma) (elementwise): returns the
// interval dt(max|v| / 127) and, when it is positive and finite, writes codes = clamp(rne(dt(v / interval)),
// ±127) (otherwise the codes are left as they are). src finite, sigma in (0, ∞). v: scratch of n floats.
float quantize_scaled_row_symmetric(const float* src, const float* sigma, bool divide, std::int64_t n, DType dtype,
                                    float* v, std::int8_t* codes);

// Σ_i (dt((acc[i] − acc_offset[i]) · (row_scale · col_scale[i])) − reference[i])², in double over 8 interleaved
// partial sums combined as ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)): an int8 product scaled back and
// rounded like a dtype matmul output, against the float result. acc_offset removes, exactly in int32, the
// 128·Σ_k W[i,k] that u8 = s8 + 128 activations add to a u8·s8 product (gemm_int8.h); zeros for s8 products.
double dequantized_row_square_error(const std::int32_t* acc, const std::int32_t* acc_offset, const float* col_scale,
                                    float row_scale, const float* reference, std::int64_t n, DType dtype);

// ---- activation rows of the int8 linears, as u8 = code + 128 (the form oneDNN's u8·s8 matmul takes) ----

// Static per-tensor: q[i] = clamp(rne(x[i] / scale + offset), −128, 127) + 128 (a NaN code becomes −128).
// Returns false when the row holds a NaN or an infinity.
bool quantize_activation_row_static(const float* x, std::int64_t n, float scale, float offset, std::uint8_t* q);

// Dynamic per-token symmetric: returns s = max|x| / 127 and writes q[i] = clamp(rne(x[i] / s), ±127) + 128.
// An all-zero row gets s = 0 and codes 0; a row with a NaN or an infinity gets s = NaN (codes 0).
float quantize_activation_row_dynamic(const float* x, std::int64_t n, std::uint8_t* q);

// In place: y holds the int32 accumulators (their bits) of a row of u8·s8 products.
//   static:  y[j] = float(acc[j] + bias[j]) · deq[j], the sum formed exactly in double and rounded once;
//   dynamic: y[j] = float(acc[j] − zero_sum[j]) · row_scale · col_scale[j].
void dequantize_static_row(float* y, std::int64_t n, const double* bias, const float* deq);
void dequantize_dynamic_row(float* y, std::int64_t n, const std::int32_t* zero_sum, float row_scale,
                            const float* col_scale);

}  // namespace moeslim::kernels
