// Integer GEMM for the quantized runtime: acc[M,N] = X[M,K] · W[N,K]ᵀ with int8 weights (PyTorch Linear
// layout) and u8 or s8 activations, accumulated exactly in int32; and a dequantising form with float output.
//
// oneDNN's x86 int8 matmul takes u8 (or s8) activations with s8 weights. moeslim always gives it u8 and fixes
// the offset itself, exactly, in integers:
//   Σ_k (x_q[m,k] − z[m])·W[n,k] = Σ_k x_q[m,k]·W[n,k] − z[m]·Σ_k W[n,k]
// so per-row (per-token) zero points cost one pass over the output, and s8 activations are handled as
// u8 = s8 + 128 (flip the sign bit) with z = 128. The column sums Σ_k W[n,k] are computed when preparing.
//
// Exactness: AMX (tdpbusd) and VNNI (vpdpbusd) accumulate u8·s8 in int32 exactly. On CPUs without VNNI,
// oneDNN's u8·s8 kernels use vpmaddubsw, whose int16 pair sums can saturate; there moeslim uses its own exact
// (slower) loops instead — see int8_gemm_backend().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm.h"  // WeightStorage

namespace moeslim::kernels {

// Largest K for which every u8·s8 sum (≤ 255·128·K) fits in int32.
inline constexpr std::int64_t kMaxInt8GemmK = 65000;

class PreparedInt8Weight {
 public:
  PreparedInt8Weight() = default;
  // w: row-major s8 [n, k] with row stride ld ≥ k. kBorrowed uses w in place (it must outlive this object).
  static PreparedInt8Weight from_s8(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int64_t ld,
                                    WeightStorage storage = WeightStorage::kPacked);

  // A 2-D I8 tensor [n, k]; with kBorrowed a copy of the tensor keeps its memory alive.
  static PreparedInt8Weight from_tensor(const Tensor& w, WeightStorage storage = WeightStorage::kPacked);

  bool empty() const { return impl_ == nullptr; }
  std::int64_t n() const;
  std::int64_t k() const;
  const std::vector<std::int32_t>& column_sums() const;  // Σ_k W[n, k] for each output feature n
  std::size_t owned_bytes() const;

  struct Impl;  // defined in gemm_int8.cc

 private:
  friend const Impl& int8_impl(const PreparedInt8Weight& w);
  std::shared_ptr<const Impl> impl_;
};

// acc = X·Wᵀ exactly. x: [m, w.k()] row stride ldx; acc: [m, w.n()] row stride ldacc.
void gemm_u8s8_s32(const std::uint8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& w,
                   std::int32_t* acc, std::int64_t ldacc);
void gemm_s8s8_s32(const std::int8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& w,
                   std::int32_t* acc, std::int64_t ldacc);

// Dequantisation parameters; every pointer may be null (meaning 1, or 0 for the offsets):
//   y[m,n] = float(acc[m,n] − row_zero[m]·Σ_k W[n,k] + col_bias[n]) · row_scale[m] · col_scale[n]
// The integer part is exact; the float part is two roundings, in that order. This covers
//   W8A8 dynamic:  row_scale = per-token scale s_t, col_scale = weight_scale;
//   W8A8 static:   col_bias = quant_bias, col_scale = deq_scale (the input offset is folded into quant_bias;
//                  or pass it as row_zero for every row instead);
//   asymmetric u8: row_zero = the activation zero point.
struct Int8Dequant {
  const float* row_scale = nullptr;      // [m]
  const float* col_scale = nullptr;      // [n]
  const std::int32_t* row_zero = nullptr;  // [m]
  const std::int32_t* col_bias = nullptr;  // [n]
};

void gemm_u8s8_f32(const std::uint8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& w,
                   const Int8Dequant& dequant, float* y, std::int64_t ldy);
void gemm_s8s8_f32(const std::int8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& w,
                   const Int8Dequant& dequant, float* y, std::int64_t ldy);

// kOneDnn where its int8 kernels are exact (VNNI or AMX), else kPortable; set_int8_gemm_backend forces one
// (tests compare the two; forcing kOneDnn on a non-VNNI CPU risks the saturation described above).
enum class Int8GemmBackend { kAuto, kOneDnn, kPortable };
void set_int8_gemm_backend(Int8GemmBackend backend);
Int8GemmBackend int8_gemm_backend();  // resolved, never kAuto
const char* int8_gemm_backend_name(Int8GemmBackend backend);

}  // namespace moeslim::kernels
