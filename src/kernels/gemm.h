// Float GEMM for linear layers: Y[M,N] = X[M,K] · W[N,K]ᵀ, W in PyTorch Linear layout (rows = output
// features), X and Y float32, W bf16 (usually a read-only mmap of the checkpoint) or float32. All through
// oneDNN matmul, which picks AVX-512 / AVX512-BF16 / AMX kernels at run time.
//
// Precision (relative L2 error against a double-precision reference, M=64 N=768 K=2048, Gaussian data):
//   kF32  — as exact as a float32 GEMM (measured 5.7e-7 native, 1.5e-7 bf16x3).
//           Two implementations, chosen per CPU (F32GemmMethod below):
//             native f32:  W widened to float32 once (when prepared), f32 x f32 FMA kernels;
//             bf16x3:      X split into three bf16 terms hi+mid+lo that carry all 24 bits of X (convert.h),
//                          three bf16 GEMMs against the unchanged bf16 W, accumulated in f32 (smallest term
//                          first). Products of bf16 values are exact in f32, so this is a float32 GEMM;
//                          on AMX it is 1.1–1.7x faster than native f32 (bench/gemm_bench) and keeps W at
//                          2 bytes per weight.
//                          Differences from native f32 only at the edges: AMX flushes subnormals (values
//                          below ~1e-38), and an Inf in X gives NaN (Inf − Inf in the split).
//   kBF16 — X rounded to bf16 (nearest even), one bf16 GEMM with f32 accumulation. 3–4x faster than kF32;
//           each activation carries ≤ 2^-9 relative error, so |error| ≤ 2^-9·Σ|x·w| per output; measured
//           1.7e-3 relative L2. Where oneDNN has no bf16 matmul (AVX2-only CPUs) the same numbers come from
//           a float32 GEMM on bf16-rounded activations (method "bf16-on-f32"), at float32 speed.
//
// Speed notes: a packed weight runs on oneDNN's brgemm kernels, which need dense X and Y rows (ld == k,
// ld == n); strided X or Y are staged through dense buffers (an extra copy). A borrowed weight also runs on
// brgemm when W, X and Y are all dense, and on oneDNN's gemm:jit otherwise (any strides; slower for small M).
// Primitives are cached, and M is bucketed so a run meets only ~12 per weight shape (row_blocks.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace moeslim::kernels {

enum class GemmPrecision { kF32, kBF16 };
const char* gemm_precision_name(GemmPrecision precision);  // "f32", "bf16"

// How kF32 is computed. kAuto: bf16x3 when oneDNN uses AMX (the only case where it is faster), else native.
enum class F32GemmMethod { kAuto, kNativeF32, kBf16x3 };
void set_f32_gemm_method(F32GemmMethod method);  // for tests and benchmarks; affects weights prepared later
F32GemmMethod resolved_f32_gemm_method();        // never kAuto

// Where a prepared weight's values live.
//   kPacked:   an owned copy in oneDNN's blocked layout (fastest, most so for small M; costs one copy).
//   kBorrowed: the caller's memory, used in place; it must outlive the PreparedWeight. Only possible when no
//              conversion is needed (a bf16 weight used at kBF16 or by bf16x3); otherwise a packed copy is made.
enum class WeightStorage { kPacked, kBorrowed };

// A weight W[N,K] ready for repeated GEMMs. Immutable; copies share the data.
class PreparedWeight {
 public:
  PreparedWeight() = default;

  // w: row-major bf16 [n, k] with row stride ld ≥ k (elements).
  static PreparedWeight from_bf16(const std::uint16_t* w, std::int64_t n, std::int64_t k, std::int64_t ld,
                                  GemmPrecision precision, WeightStorage storage = WeightStorage::kPacked);
  // w: row-major float32 [n, k]. At kBF16 the values are rounded to bf16; kF32 always uses native f32.
  static PreparedWeight from_f32(const float* w, std::int64_t n, std::int64_t k, std::int64_t ld,
                                 GemmPrecision precision);

  // A 2-D BF16 or F32 tensor [n, k] (e.g. a view into a mapped checkpoint). With kBorrowed the prepared
  // weight keeps a copy of the tensor, and with it the mapping, alive. Other dtypes: kUnsupported.
  static PreparedWeight from_tensor(const Tensor& w, GemmPrecision precision,
                                    WeightStorage storage = WeightStorage::kPacked);

  bool empty() const { return impl_ == nullptr; }
  std::int64_t n() const;
  std::int64_t k() const;
  GemmPrecision precision() const;
  const char* method_name() const;  // "f32", "bf16", "bf16x3" or "bf16-on-f32"
  std::size_t owned_bytes() const;  // 0 when borrowed

  struct Impl;  // defined in gemm.cc

 private:
  friend void gemm(const float*, std::int64_t, std::int64_t, const PreparedWeight&, float*, std::int64_t);
  std::shared_ptr<const Impl> impl_;
};

// Y = X·Wᵀ. x: [m, w.k()] with row stride ldx; y: [m, w.n()] with row stride ldy. m = 0 does nothing.
// Safe to call from several threads at once (per-thread streams and staging buffers of a few MB each);
// each call itself uses set_num_threads() threads.
void gemm(const float* x, std::int64_t m, std::int64_t ldx, const PreparedWeight& w, float* y, std::int64_t ldy);

// One-shot form on a bf16 weight [n, k] (row stride ldw), e.g. straight from an mmap. Uses the weight in
// place where the method allows (kBF16, bf16x3), otherwise converts it for this call only.
void gemm_bf16_weight(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const std::uint16_t* w,
                      std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy, GemmPrecision precision);

// Primitive cache counters (shared by all GEMMs, attention included), to check reuse across M.
struct GemmCacheStats {
  std::size_t primitives = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
};
GemmCacheStats gemm_cache_stats();

}  // namespace moeslim::kernels
