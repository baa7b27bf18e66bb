#include "kernels/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernels/dnnl_matmul.h"

namespace moeslim::kernels {
namespace {

using dt = dnnl::memory::data_type;

enum class Method { kNativeF32, kBf16, kBf16x3 };

const char* method_name_of(Method m) {
  switch (m) {
    case Method::kNativeF32: return "f32";
    case Method::kBf16: return "bf16";
    case Method::kBf16x3: return "bf16x3";
  }
  return "?";
}

std::atomic<F32GemmMethod> g_f32_method{F32GemmMethod::kAuto};

// Rows of X converted per step on the bf16 paths: bounds the conversion scratch (3 × 2M bf16 = 12 MB for
// bf16x3) and keeps most steps at one M, so one primitive serves them. Measured: no loss against one call.
constexpr std::int64_t kChunkElements = std::int64_t{1} << 21;

void check_dims(std::int64_t n, std::int64_t k, std::int64_t ld, const void* w, const char* what) {
  if (w == nullptr || n < 1 || k < 1 || ld < k) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": bad weight [" + std::to_string(n) + ", " +
                                                 std::to_string(k) + "] with row stride " + std::to_string(ld));
  }
}

}  // namespace

struct PreparedWeight::Impl {
  std::int64_t n = 0;
  std::int64_t k = 0;
  GemmPrecision precision = GemmPrecision::kF32;
  Method method = Method::kNativeF32;
  dnnl::memory::desc weights_desc;  // packed layout, or the caller's [n, k] rows seen as [k, n]
  const void* data = nullptr;
  dnnl::memory packed;              // owns the packed copy; empty when borrowed
  std::size_t owned_bytes = 0;
  Tensor borrowed_from;             // keeps a borrowed tensor's memory (a mapping, say) alive
};

namespace {

using Impl = PreparedWeight::Impl;

Method method_for(GemmPrecision precision, bool weight_is_bf16) {
  if (precision == GemmPrecision::kBF16) return Method::kBf16;
  if (!weight_is_bf16) return Method::kNativeF32;
  return resolved_f32_gemm_method() == F32GemmMethod::kBf16x3 ? Method::kBf16x3 : Method::kNativeF32;
}

// Reorders a [n, k] row-major weight of `from_type` into the packed layout of `to_type`.
std::shared_ptr<Impl> pack(const void* w, dt from_type, std::int64_t n, std::int64_t k, std::int64_t ld,
                           dt to_type, GemmPrecision precision, Method method) {
  auto impl = std::make_shared<Impl>();
  impl->n = n;
  impl->k = k;
  impl->precision = precision;
  impl->method = method;
  impl->weights_desc = detail::preferred_weight_desc(n, k, to_type, to_type, dt::f32);
  impl->packed = dnnl::memory(impl->weights_desc, detail::cpu_engine());
  impl->data = impl->packed.get_data_handle();
  impl->owned_bytes = impl->weights_desc.get_size();
  detail::reorder(detail::transposed_weight_desc(n, k, ld, from_type), w, impl->weights_desc,
                  impl->packed.get_data_handle());
  return impl;
}

thread_local std::vector<std::uint16_t> t_activations;  // bf16 terms of X
thread_local std::vector<float> t_dense_x;                // X copied dense (native f32, packed weights)
thread_local std::vector<float> t_dense_y;                // Y computed dense, then copied to its strided rows

template <typename T>
T* scratch(std::vector<T>& buffer, std::int64_t elements) {
  if (buffer.size() < static_cast<std::size_t>(elements)) buffer.resize(static_cast<std::size_t>(elements));
  return buffer.data();
}

// oneDNN 2.6 runs packed weights only with its brgemm kernels, and those need dense rows (ld == cols) for X
// and Y; anything else falls to its reference matmul (~100x slower). Strided operands are therefore staged
// through dense buffers when the weight is packed; borrowed weights go to gemm:jit, which takes any stride.
bool needs_dense(const Impl& w, std::int64_t ld, std::int64_t cols) { return w.packed && ld != cols; }

void copy_rows(const float* src, std::int64_t ld_src, float* dst, std::int64_t ld_dst, std::int64_t rows,
               std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld_dst, src + r * ld_src, sizeof(float) * cols);
}

void gemm_native_f32(const float* x, std::int64_t m, std::int64_t ldx, const Impl& w, float* y, std::int64_t ldy) {
  const bool stage_x = needs_dense(w, ldx, w.k);
  const bool stage_y = needs_dense(w, ldy, w.n);
  if (!stage_x && !stage_y) {
    const detail::MatmulProblem problem{detail::row_major_desc(m, w.k, ldx, dt::f32), w.weights_desc,
                                        detail::row_major_desc(m, w.n, ldy, dt::f32)};
    detail::run_matmul(problem, x, w.data, y);
    return;
  }
  const std::int64_t chunk = std::clamp<std::int64_t>(kChunkElements / std::max(w.k, w.n), 1, m);
  float* dense_x = stage_x ? scratch(t_dense_x, chunk * w.k) : nullptr;
  float* dense_y = stage_y ? scratch(t_dense_y, chunk * w.n) : nullptr;
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    if (stage_x) copy_rows(x + r0 * ldx, ldx, dense_x, w.k, rows, w.k);
    const float* src = stage_x ? dense_x : x + r0 * ldx;
    float* dst = stage_y ? dense_y : y + r0 * ldy;
    const detail::MatmulProblem problem{detail::row_major_desc(rows, w.k, stage_x ? w.k : ldx, dt::f32),
                                        w.weights_desc,
                                        detail::row_major_desc(rows, w.n, stage_y ? w.n : ldy, dt::f32)};
    detail::run_matmul(problem, src, w.data, dst);
    if (stage_y) copy_rows(dense_y, w.n, y + r0 * ldy, ldy, rows, w.n);
  }
}

void gemm_bf16_paths(const float* x, std::int64_t m, std::int64_t ldx, const Impl& w, float* y, std::int64_t ldy) {
  const std::int64_t k = w.k;
  const std::int64_t chunk = std::clamp<std::int64_t>(kChunkElements / k, 1, m);
  const int terms = w.method == Method::kBf16x3 ? 3 : 1;
  std::uint16_t* buffer = scratch(t_activations, terms * chunk * k);
  const bool stage_y = needs_dense(w, ldy, w.n);
  float* dense_y = stage_y ? scratch(t_dense_y, chunk * w.n) : nullptr;
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    const float* xs = x + r0 * ldx;
    float* ys = stage_y ? dense_y : y + r0 * ldy;
    const std::int64_t ld_ys = stage_y ? w.n : ldy;
    const detail::MatmulProblem first{detail::row_major_desc(rows, k, k, dt::bf16), w.weights_desc,
                                      detail::row_major_desc(rows, w.n, ld_ys, dt::f32), false};
    if (terms == 1) {
      f32_to_bf16_rows(xs, rows, k, ldx, buffer, k);
      detail::run_matmul(first, buffer, w.data, ys);
    } else {
      std::uint16_t* hi = buffer;
      std::uint16_t* mid = buffer + rows * k;
      std::uint16_t* lo = buffer + 2 * rows * k;
      split_f32_to_bf16x3_rows(xs, rows, k, ldx, hi, mid, lo);
      // Smallest term first, so the two small contributions are summed before meeting the large one.
      detail::MatmulProblem rest = first;
      rest.accumulate = true;
      detail::run_matmul(first, lo, w.data, ys);
      detail::run_matmul(rest, mid, w.data, ys);
      detail::run_matmul(rest, hi, w.data, ys);
    }
    if (stage_y) copy_rows(dense_y, w.n, y + r0 * ldy, ldy, rows, w.n);
  }
}

}  // namespace

const char* gemm_precision_name(GemmPrecision precision) {
  return precision == GemmPrecision::kF32 ? "f32" : "bf16";
}

void set_f32_gemm_method(F32GemmMethod method) { g_f32_method.store(method, std::memory_order_relaxed); }

F32GemmMethod resolved_f32_gemm_method() {
  const F32GemmMethod m = g_f32_method.load(std::memory_order_relaxed);
  if (m != F32GemmMethod::kAuto) return m;
  // Three bf16 GEMMs beat one f32 GEMM only where bf16 runs on AMX tiles (~4x AVX-512 f32); with AVX512-BF16
  // alone bf16 is ~2x f32, so three passes would lose.
  return onednn_uses_amx() ? F32GemmMethod::kBf16x3 : F32GemmMethod::kNativeF32;
}

PreparedWeight PreparedWeight::from_bf16(const std::uint16_t* w, std::int64_t n, std::int64_t k, std::int64_t ld,
                                         GemmPrecision precision, WeightStorage storage) {
  check_dims(n, k, ld, w, "PreparedWeight::from_bf16");
  const Method method = method_for(precision, /*weight_is_bf16=*/true);
  PreparedWeight out;
  if (method == Method::kNativeF32) {
    out.impl_ = pack(w, dt::bf16, n, k, ld, dt::f32, precision, method);
  } else if (storage == WeightStorage::kPacked) {
    out.impl_ = pack(w, dt::bf16, n, k, ld, dt::bf16, precision, method);
  } else {
    auto impl = std::make_shared<Impl>();
    impl->n = n;
    impl->k = k;
    impl->precision = precision;
    impl->method = method;
    impl->weights_desc = detail::transposed_weight_desc(n, k, ld, dt::bf16);
    impl->data = w;
    out.impl_ = std::move(impl);
  }
  return out;
}

PreparedWeight PreparedWeight::from_f32(const float* w, std::int64_t n, std::int64_t k, std::int64_t ld,
                                        GemmPrecision precision) {
  check_dims(n, k, ld, w, "PreparedWeight::from_f32");
  const Method method = method_for(precision, /*weight_is_bf16=*/false);
  PreparedWeight out;
  if (method == Method::kNativeF32) {
    out.impl_ = pack(w, dt::f32, n, k, ld, dt::f32, precision, method);
  } else {
    // Round with moeslim's own conversion (nearest even, exactly core/half.h), then pack.
    std::vector<std::uint16_t> rounded(static_cast<std::size_t>(n * k));
    f32_to_bf16_rows(w, n, k, ld, rounded.data(), k);
    out.impl_ = pack(rounded.data(), dt::bf16, n, k, k, dt::bf16, precision, method);
  }
  return out;
}

PreparedWeight PreparedWeight::from_tensor(const Tensor& w, GemmPrecision precision, WeightStorage storage) {
  if (w.rank() != 2) {
    throw Error(ErrorCode::kInvalidArgument, "PreparedWeight::from_tensor: weight must be 2-D, got " +
                                                 shape_to_string(w.shape()));
  }
  const std::int64_t n = w.dim(0), k = w.dim(1);
  if (w.dtype() == DType::kF32) return from_f32(w.data<float>(), n, k, k, precision);
  if (w.dtype() != DType::kBF16) {
    throw Error(ErrorCode::kUnsupported, std::string("PreparedWeight::from_tensor: weight dtype ") +
                                             std::string(dtype_name(w.dtype())) + " (need BF16 or F32)");
  }
  PreparedWeight out = from_bf16(w.data<std::uint16_t>(), n, k, k, precision, storage);
  // Just created and not shared yet, so setting the keep-alive in place is safe.
  if (out.impl_->owned_bytes == 0) std::const_pointer_cast<Impl>(out.impl_)->borrowed_from = w;
  return out;
}

std::int64_t PreparedWeight::n() const { return impl_ ? impl_->n : 0; }
std::int64_t PreparedWeight::k() const { return impl_ ? impl_->k : 0; }
GemmPrecision PreparedWeight::precision() const { return impl_ ? impl_->precision : GemmPrecision::kF32; }
const char* PreparedWeight::method_name() const { return impl_ ? method_name_of(impl_->method) : "none"; }
std::size_t PreparedWeight::owned_bytes() const { return impl_ ? impl_->owned_bytes : 0; }

void gemm(const float* x, std::int64_t m, std::int64_t ldx, const PreparedWeight& w, float* y, std::int64_t ldy) {
  if (w.impl_ == nullptr) throw Error(ErrorCode::kInvalidArgument, "gemm: empty PreparedWeight");
  const Impl& impl = *w.impl_;
  if (m < 0 || ldx < impl.k || ldy < impl.n || (m > 0 && (x == nullptr || y == nullptr))) {
    throw Error(ErrorCode::kInvalidArgument,
                "gemm: bad operands for weight [" + std::to_string(impl.n) + ", " + std::to_string(impl.k) +
                    "]: m=" + std::to_string(m) + " ldx=" + std::to_string(ldx) + " ldy=" + std::to_string(ldy));
  }
  if (m == 0) return;
  if (impl.method == Method::kNativeF32) {
    gemm_native_f32(x, m, ldx, impl, y, ldy);
  } else {
    gemm_bf16_paths(x, m, ldx, impl, y, ldy);
  }
}

void gemm_bf16_weight(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const std::uint16_t* w,
                      std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy, GemmPrecision precision) {
  gemm(x, m, ldx, PreparedWeight::from_bf16(w, n, k, ldw, precision, WeightStorage::kBorrowed), y, ldy);
}

GemmCacheStats gemm_cache_stats() {
  const detail::MatmulCacheStats s = detail::matmul_cache_stats();
  return {s.entries, s.hits, s.misses};
}

}  // namespace moeslim::kernels
