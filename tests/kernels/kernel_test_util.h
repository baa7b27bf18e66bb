// Helpers shared by the kernel tests: deterministic random data, error measures, scoped overrides.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"

namespace moeslim::kernels::testing {

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<std::uint16_t> random_bf16(std::size_t n, std::uint32_t seed, float scale = 0.1f) {
  const std::vector<float> f = random_floats(n, seed, -scale, scale);
  std::vector<std::uint16_t> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = moeslim::f32_to_bf16(f[i]);
  return h;
}

template <typename T>
std::vector<T> random_ints(std::size_t n, std::uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// ‖a − b‖ / ‖b‖ over a [rows, cols] window of two strided matrices.
template <typename A, typename B>
double rel_l2(const A* a, std::int64_t lda, const B* b, std::int64_t ldb, std::int64_t rows, std::int64_t cols) {
  double err = 0.0, ref = 0.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const double d = static_cast<double>(a[r * lda + c]) - static_cast<double>(b[r * ldb + c]);
      err += d * d;
      ref += static_cast<double>(b[r * ldb + c]) * static_cast<double>(b[r * ldb + c]);
    }
  }
  return ref == 0.0 ? std::sqrt(err) : std::sqrt(err / ref);
}

inline double rel_l2(const std::vector<float>& a, const std::vector<double>& b) {
  return rel_l2(a.data(), 0, b.data(), 0, 1, static_cast<std::int64_t>(a.size()));
}

inline std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

inline std::vector<std::uint32_t> bits_of_all(const std::vector<float>& v) {
  std::vector<std::uint32_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = bits_of(v[i]);
  return b;
}

// Distance in units in the last place between two finite floats of the same sign (0 when equal).
inline std::int64_t ulp_distance(float a, float b) {
  if (a == b) return 0;
  const auto ia = static_cast<std::int64_t>(bits_of(std::fabs(a)));
  const auto ib = static_cast<std::int64_t>(bits_of(std::fabs(b)));
  if (std::signbit(a) != std::signbit(b)) return ia + ib;
  return ia > ib ? ia - ib : ib - ia;
}

// Forces a kernel path for the lifetime of the object (restores the best path after).
class ScopedKernelIsa {
 public:
  explicit ScopedKernelIsa(KernelIsa isa) { set_kernel_isa(isa); }
  ~ScopedKernelIsa() { set_kernel_isa(best_kernel_isa()); }
  ScopedKernelIsa(const ScopedKernelIsa&) = delete;
  ScopedKernelIsa& operator=(const ScopedKernelIsa&) = delete;
};

class ScopedF32Method {
 public:
  explicit ScopedF32Method(F32GemmMethod m) { set_f32_gemm_method(m); }
  ~ScopedF32Method() { set_f32_gemm_method(F32GemmMethod::kAuto); }
  ScopedF32Method(const ScopedF32Method&) = delete;
  ScopedF32Method& operator=(const ScopedF32Method&) = delete;
};

class ScopedInt8Backend {
 public:
  explicit ScopedInt8Backend(Int8GemmBackend b) { set_int8_gemm_backend(b); }
  ~ScopedInt8Backend() { set_int8_gemm_backend(Int8GemmBackend::kAuto); }
  ScopedInt8Backend(const ScopedInt8Backend&) = delete;
  ScopedInt8Backend& operator=(const ScopedInt8Backend&) = delete;
};

// The kernel paths this CPU can run: always kPortable, plus kAvx512 where supported.
inline std::vector<KernelIsa> runnable_isas() {
  std::vector<KernelIsa> isas{KernelIsa::kPortable};
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl) isas.push_back(KernelIsa::kAvx512);
  return isas;
}

}  // namespace moeslim::kernels::testing
