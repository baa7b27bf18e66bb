// Two ways to give the portable and the AVX-512 path the same bits, both relying on this library being built
// with -ffp-contract=off (a fused multiply-add rounds a·b+c once instead of twice, so a contracted path would
// differ in the last bit from one that is not, and the outputs must match the reference bit for bit):
//  - the weight-side kernels (codes, error sums, the scaled symmetric row) are one always-inline C++ body,
//    compiled twice: as it is for baseline x86-64 and inlined into a MOESLIM_AVX512 function, where GCC
//    vectorises it 16 lanes wide. Both compile the same IEEE operations in the same order; sums use explicit
//    partial sums, never a reassociated reduction. F16 rounding is a library call per element, so F16 rows
//    only take the portable compilation (nothing to vectorise).
//  - the activation rows of the int8 linears, where GCC does not vectorise the portable loop (the max|x|
//    reduction, the finiteness test), are written twice: a scalar loop and the intrinsics doing the same
//    operations lane by lane.
#include "kernels/quant_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "kernels/scalar_math.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

#define MOESLIM_ROW_INLINE [[gnu::always_inline]] inline

using detail::kLanes;
using detail::round_half_even_small;

bool use_avx512() { return active_kernel_isa() == KernelIsa::kAvx512; }

// dt(·) as types, so the row bodies are compiled once per dtype with the rounding inlined.
struct RoundBf16 {
  MOESLIM_ROW_INLINE static float apply(float x) { return round_to_bf16_non_nan(x); }  // rows hold no NaN
};
struct RoundF16 {
  static float apply(float x) { return f16_to_f32(f32_to_f16(x)); }
};
struct RoundNone {
  MOESLIM_ROW_INLINE static float apply(float x) { return x; }
};

// The two compilations of a row body Kernel::run<Round>, and the choice between them.
template <class Kernel, class Round, class... Args>
MOESLIM_AVX512 auto run_avx512(Args... args) {
  return Kernel::template run<Round>(args...);
}
template <class Kernel, class Round, class... Args>
auto run_portable(Args... args) {
  return Kernel::template run<Round>(args...);
}
template <class Kernel, class... Args>
auto run_for_dtype(DType dtype, Args... args) {
  const bool avx512 = use_avx512();
  switch (dtype) {
    case DType::kBF16:
      return avx512 ? run_avx512<Kernel, RoundBf16>(args...) : run_portable<Kernel, RoundBf16>(args...);
    case DType::kF32:
      return avx512 ? run_avx512<Kernel, RoundNone>(args...) : run_portable<Kernel, RoundNone>(args...);
    case DType::kF16: return run_portable<Kernel, RoundF16>(args...);
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  "row quantization needs a BF16, F16 or F32 dtype, got " + std::string(dtype_name(dtype)));
  }
}

// clamp(rne(dt(x / scale))) as a float. Clamping before rounding is the same as after because the bounds are
// integers and rounding is monotone.
template <class Round>
MOESLIM_ROW_INLINE float code_of(float x, float scale, CodeRange range) {
  return round_half_even_small(std::min(std::max(Round::apply(x / scale), range.lo), range.hi));
}

struct RowCodes {
  template <class Round>
  MOESLIM_ROW_INLINE static void run(const float* x, std::int64_t n, float scale, CodeRange range,
                                     std::int8_t* codes) {
    for (std::int64_t i = 0; i < n; ++i) {
      codes[i] = static_cast<std::int8_t>(static_cast<int>(code_of<Round>(x[i], scale, range)));
    }
  }
};

template <bool kResidual>
struct ElementwiseCodes {
  template <class Round>
  MOESLIM_ROW_INLINE static void run(const float* x, const float* scale, const float* zero, std::int64_t n,
                                     CodeRange range, std::int8_t* codes, const float* base, float* residual) {
    for (std::int64_t i = 0; i < n; ++i) {
      const float z = zero[i];
      const float q =
          round_half_even_small(std::min(std::max(Round::apply(x[i] / scale[i]), range.lo - z), range.hi - z)) + z;
      codes[i] = static_cast<std::int8_t>(static_cast<int>(q));
      if constexpr (kResidual) residual[i] = base[i] - (q - z) * scale[i];
    }
  }
};

struct RowCodeErrorSums {
  template <class Round>
  MOESLIM_ROW_INLINE static void add(float w, float scale, CodeRange range, int lane, float* e, float* wq,
                                     float* qq) {
    const float q = code_of<Round>(w, scale, range);
    const float d = w - Round::apply(q * scale);
    e[lane] += d * d;
    wq[lane] += Round::apply(w * q);
    qq[lane] += Round::apply(q * q);
  }

  template <class Round>
  MOESLIM_ROW_INLINE static CodeErrorSums run(const float* w, std::int64_t n, float scale, CodeRange range) {
    float e[kLanes] = {}, wq[kLanes] = {}, qq[kLanes] = {};
    std::int64_t i0 = 0;
    for (; i0 + kLanes <= n; i0 += kLanes) {
      for (int j = 0; j < kLanes; ++j) add<Round>(w[i0 + j], scale, range, j, e, wq, qq);
    }
    for (int j = 0; i0 + j < n; ++j) add<Round>(w[i0 + j], scale, range, j, e, wq, qq);
    return {detail::reduce_lanes(e), detail::reduce_lanes(wq), detail::reduce_lanes(qq)};
  }
};

template <bool kDivide>
struct ScaledRowSymmetric {
  template <class Round>
  MOESLIM_ROW_INLINE static float run(const float* src, const float* sigma, std::int64_t n, float* v,
                                      std::int8_t* codes) {
    // max|v| on the bit patterns: for values ≥ 0 unsigned order is float order, and an integer max reduction
    // vectorises where a float one does not (without fast-math). v holds no NaN: src is finite, σ in (0, ∞).
    std::uint32_t max_bits = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const float t = Round::apply(kDivide ? src[j] / sigma[j] : src[j] * sigma[j]);
      v[j] = t;
      std::uint32_t bits;
      std::memcpy(&bits, &t, 4);
      max_bits = std::max(max_bits, bits & 0x7fffffffu);
    }
    float m;
    std::memcpy(&m, &max_bits, 4);
    const float interval = Round::apply(m / 127.0f);
    if (!(interval > 0.0f && interval < std::numeric_limits<float>::infinity())) return interval;
    RowCodes::run<Round>(v, n, interval, CodeRange{-127.0f, 127.0f}, codes);
    return interval;
  }
};

struct DequantizedRowSquareError {
  template <class Round>
  MOESLIM_ROW_INLINE static double run(const std::int32_t* acc, const std::int32_t* acc_offset,
                                       const float* col_scale, float row_scale, const float* reference,
                                       std::int64_t n) {
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      for (int k = 0; k < 8; ++k) {
        const float scaled = static_cast<float>(acc[i + k] - acc_offset[i + k]) * (row_scale * col_scale[i + k]);
        const float d = Round::apply(scaled) - reference[i + k];
        part[k] += static_cast<double>(d) * d;
      }
    }
    for (; i < n; ++i) {
      const float scaled = static_cast<float>(acc[i] - acc_offset[i]) * (row_scale * col_scale[i]);
      const float d = Round::apply(scaled) - reference[i];
      part[0] += static_cast<double>(d) * d;
    }
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  }
};

// ---- activation rows ----

// Clamp that sends NaN to `lo` (a NaN row is reported separately; the code only has to be a valid integer).
inline float clamp_to(float v, float lo, float hi) {
  v = v >= lo ? v : lo;
  return v <= hi ? v : hi;
}

// x − x is 0 for every finite x and NaN for ±Inf and NaN.
inline int is_finite_bit(float x) { return (x - x) == 0.0f ? 1 : 0; }

// The conversion's explicit round-to-nearest-even equals round_half_even_small on the clamped values.
MOESLIM_AVX512 inline void store_u8_codes(__m512 clamped, std::uint8_t* q, __mmask16 m) {
  const __m512i i = _mm512_cvt_roundps_epi32(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm512_mask_cvtepi32_storeu_epi8(q, m, _mm512_add_epi32(i, _mm512_set1_epi32(128)));
}

// _mm512_max_ps(v, lo) returns lo when v is NaN, like clamp_to.
MOESLIM_AVX512 inline __m512 clamp_avx512(__m512 v, __m512 lo, __m512 hi) {
  return _mm512_min_ps(_mm512_max_ps(v, lo), hi);
}

// All-ones where the first m lanes of v are finite (x − x == 0), the other lanes counted as finite.
MOESLIM_AVX512 inline __mmask16 finite_lanes(__m512 v, __mmask16 m) {
  return _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_EQ_OQ) | static_cast<__mmask16>(~m);
}

bool activation_row_static_portable(const float* x, std::int64_t n, float scale, float offset, std::uint8_t* q) {
  int finite = 1;
  for (std::int64_t i = 0; i < n; ++i) {
    finite &= is_finite_bit(x[i]);
    const float v = round_half_even_small(clamp_to(x[i] / scale + offset, -128.0f, 127.0f));
    q[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(v) + 128);
  }
  return finite != 0;
}

MOESLIM_AVX512 bool activation_row_static_avx512(const float* x, std::int64_t n, float scale, float offset,
                                                 std::uint8_t* q) {
  const __m512 vs = _mm512_set1_ps(scale), vo = _mm512_set1_ps(offset);
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  __mmask16 finite = 0xffff;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    finite &= finite_lanes(v, m);
    store_u8_codes(clamp_avx512(_mm512_add_ps(_mm512_div_ps(v, vs), vo), lo, hi), q + i, m);
  }
  return finite == 0xffff;
}

// The row's scale when finite and nonzero; otherwise fills the codes with 0 (u8 128) and returns 0 or NaN.
float dynamic_scale_or_fill(float amax, bool finite, std::int64_t n, std::uint8_t* q) {
  const float s = amax / 127.0f;
  if (!finite || s == 0.0f) {
    std::memset(q, 128, static_cast<std::size_t>(n));
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  return s;
}

float activation_row_dynamic_portable(const float* x, std::int64_t n, std::uint8_t* q) {
  float amax = 0.0f;
  int finite = 1;
  for (std::int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    amax = a > amax ? a : amax;
    finite &= is_finite_bit(x[i]);
  }
  const float s = dynamic_scale_or_fill(amax, finite != 0, n, q);
  if (!(s > 0.0f)) return s;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = round_half_even_small(clamp_to(x[i] / s, -127.0f, 127.0f));
    q[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(v) + 128);
  }
  return s;
}

MOESLIM_AVX512 float activation_row_dynamic_avx512(const float* x, std::int64_t n, std::uint8_t* q) {
  __m512 amax = _mm512_setzero_ps();
  __mmask16 finite = 0xffff;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    finite &= finite_lanes(v, m);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v));  // exact and order-free for finite rows
  }
  const float s = dynamic_scale_or_fill(_mm512_reduce_max_ps(amax), finite == 0xffff, n, q);
  if (!(s > 0.0f)) return s;
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::first_lanes(n - i);
    store_u8_codes(clamp_avx512(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs), lo, hi), q + i, m);
  }
  return s;
}

// ---- dequantisation (conversions round to nearest even on both paths) ----

// The accumulator's bits (a float store may not alias an int read).
inline std::int32_t accumulator_at(const float* y, std::int64_t j) {
  std::int32_t a;
  std::memcpy(&a, y + j, sizeof a);
  return a;
}

void dequantize_static_tail(float* y, std::int64_t j, std::int64_t n, const double* bias, const float* deq) {
  for (; j < n; ++j) y[j] = static_cast<float>(static_cast<double>(accumulator_at(y, j)) + bias[j]) * deq[j];
}

MOESLIM_AVX512 void dequantize_static_avx512(float* y, std::int64_t n, const double* bias, const float* deq) {
  std::int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i acc = _mm512_loadu_si512(y + j);
    const __m512d lo = _mm512_add_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(acc)), _mm512_loadu_pd(bias + j));
    const __m512d hi =
        _mm512_add_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc, 1)), _mm512_loadu_pd(bias + j + 8));
    const __m256 flo = _mm512_cvt_roundpd_ps(lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 fhi = _mm512_cvt_roundpd_ps(hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(flo)), _mm256_castps_pd(fhi), 1));
    _mm512_storeu_ps(y + j, _mm512_mul_ps(f, _mm512_loadu_ps(deq + j)));
  }
  dequantize_static_tail(y, j, n, bias, deq);
}

void dequantize_dynamic_tail(float* y, std::int64_t j, std::int64_t n, const std::int32_t* zero_sum, float row_scale,
                             const float* col_scale) {
  for (; j < n; ++j) y[j] = static_cast<float>(accumulator_at(y, j) - zero_sum[j]) * row_scale * col_scale[j];
}

MOESLIM_AVX512 void dequantize_dynamic_avx512(float* y, std::int64_t n, const std::int32_t* zero_sum,
                                              float row_scale, const float* col_scale) {
  const __m512 rs = _mm512_set1_ps(row_scale);
  std::int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i acc = _mm512_sub_epi32(_mm512_loadu_si512(y + j), _mm512_loadu_si512(zero_sum + j));
    const __m512 f = _mm512_cvt_roundepi32_ps(acc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_mul_ps(f, rs), _mm512_loadu_ps(col_scale + j)));
  }
  dequantize_dynamic_tail(y, j, n, zero_sum, row_scale, col_scale);
}

}  // namespace

void quantize_row_codes(const float* x, std::int64_t n, float scale, DType dtype, CodeRange range,
                        std::int8_t* codes) {
  run_for_dtype<RowCodes>(dtype, x, n, scale, range, codes);
}

void quantize_codes_elementwise(const float* x, const float* scale, const float* zero, std::int64_t n, DType dtype,
                                CodeRange range, std::int8_t* codes, const float* base, float* residual) {
  if (residual != nullptr) {
    run_for_dtype<ElementwiseCodes<true>>(dtype, x, scale, zero, n, range, codes, base, residual);
  } else {
    run_for_dtype<ElementwiseCodes<false>>(dtype, x, scale, zero, n, range, codes, base, residual);
  }
}

CodeErrorSums code_error_sums(const float* w, std::int64_t n, float scale, DType dtype, CodeRange range) {
  return run_for_dtype<RowCodeErrorSums>(dtype, w, n, scale, range);
}

float quantize_scaled_row_symmetric(const float* src, const float* sigma, bool divide, std::int64_t n, DType dtype,
                                    float* v, std::int8_t* codes) {
  return divide ? run_for_dtype<ScaledRowSymmetric<true>>(dtype, src, sigma, n, v, codes)
                : run_for_dtype<ScaledRowSymmetric<false>>(dtype, src, sigma, n, v, codes);
}

double dequantized_row_square_error(const std::int32_t* acc, const std::int32_t* acc_offset, const float* col_scale,
                                    float row_scale, const float* reference, std::int64_t n, DType dtype) {
  return run_for_dtype<DequantizedRowSquareError>(dtype, acc, acc_offset, col_scale, row_scale, reference, n);
}

bool quantize_activation_row_static(const float* x, std::int64_t n, float scale, float offset, std::uint8_t* q) {
  return use_avx512() ? activation_row_static_avx512(x, n, scale, offset, q)
                      : activation_row_static_portable(x, n, scale, offset, q);
}

float quantize_activation_row_dynamic(const float* x, std::int64_t n, std::uint8_t* q) {
  return use_avx512() ? activation_row_dynamic_avx512(x, n, q) : activation_row_dynamic_portable(x, n, q);
}

void dequantize_static_row(float* y, std::int64_t n, const double* bias, const float* deq) {
  use_avx512() ? dequantize_static_avx512(y, n, bias, deq) : dequantize_static_tail(y, 0, n, bias, deq);
}

void dequantize_dynamic_row(float* y, std::int64_t n, const std::int32_t* zero_sum, float row_scale,
                            const float* col_scale) {
  use_avx512() ? dequantize_dynamic_avx512(y, n, zero_sum, row_scale, col_scale)
               : dequantize_dynamic_tail(y, 0, n, zero_sum, row_scale, col_scale);
}

}  // namespace moeslim::kernels
