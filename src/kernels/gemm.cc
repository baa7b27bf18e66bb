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
#include "kernels/row_blocks.h"

namespace moeslim::kernels {
namespace {

using dt = dnnl::memory::data_type;

// kBf16OnF32: kBF16 where oneDNN has no bf16 matmul (AVX2-only CPUs): X rounded to bf16 values but kept in
// float32, times the bf16 weight widened to float32, in a float32 GEMM. Products of bf16 values are exact in
// float32, so this computes what a bf16 GEMM with float32 accumulation computes (at float32 speed).
enum class Method { kNativeF32, kBf16, kBf16x3, kBf16OnF32 };

const char* method_name_of(Method m) {
  switch (m) {
    case Method::kNativeF32: return "f32";
    case Method::kBf16: return "bf16";
    case Method::kBf16x3: return "bf16x3";
    case Method::kBf16OnF32: return "bf16-on-f32";
  }
  return "?";
}

// The methods whose packed weight is float32.
bool weight_is_f32(Method m) { return m == Method::kNativeF32 || m == Method::kBf16OnF32; }

std::atomic<F32GemmMethod> g_f32_method{F32GemmMethod::kAuto};

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
  dnnl::memory packed;              // the packed copy; empty when borrowed
  std::shared_ptr<void> packed_storage;  // owns the packed copy's memory
  std::size_t owned_bytes = 0;
  Tensor borrowed_from;             // keeps a borrowed tensor's memory (a mapping, say) alive
};

namespace {

using Impl = PreparedWeight::Impl;

Method method_for(GemmPrecision precision, bool weight_is_bf16) {
  const bool bf16_matmul = detail::onednn_has_bf16_matmul();
  if (precision == GemmPrecision::kBF16) return bf16_matmul ? Method::kBf16 : Method::kBf16OnF32;
  if (!weight_is_bf16 || !bf16_matmul) return Method::kNativeF32;
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
  impl->packed = detail::owned_weight_memory(impl->weights_desc, impl->packed_storage);
  impl->data = impl->packed.get_data_handle();
  impl->owned_bytes = impl->weights_desc.get_size();
  detail::reorder(detail::transposed_weight_desc(n, k, ld, from_type), w, impl->weights_desc,
                  impl->packed.get_data_handle());
  return impl;
}

thread_local std::vector<std::uint16_t> t_activations;  // bf16 terms of X
thread_local std::vector<float> t_dense_x;                // X rows copied dense (native f32)
thread_local std::vector<float> t_dense_y;                // Y rows computed dense, then copied out

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

// One row block: X rows [rows, k] (row stride ldx) against W into Y rows (row stride ldy), with the GEMM run
// at M = block.padded_rows (extra rows are zeros in, ignored out).
void gemm_block(const float* x, std::int64_t ldx, const Impl& w, float* y, std::int64_t ldy,
                const detail::RowBlock& block) {
  const std::int64_t k = w.k, n = w.n, m = block.padded_rows, rows = block.rows;
  const bool stage_y = block.padded() || needs_dense(w, ldy, n);
  float* out = stage_y ? scratch(t_dense_y, m * n) : y;
  const auto out_desc = detail::row_major_desc(m, n, stage_y ? n : ldy, dt::f32);

  if (weight_is_f32(w.method)) {
    const bool round = w.method == Method::kBf16OnF32;
    const float* src = x;
    std::int64_t ld_src = ldx;
    if (round || block.padded() || needs_dense(w, ldx, k)) {
      float* dense = scratch(t_dense_x, m * k);
      round ? round_to_bf16_rows(x, rows, k, ldx, dense, k) : copy_rows(x, ldx, dense, k, rows, k);
      std::fill(dense + rows * k, dense + m * k, 0.0f);
      src = dense;
      ld_src = k;
    }
    detail::run_matmul({detail::row_major_desc(m, k, ld_src, dt::f32), w.weights_desc, out_desc}, src, w.data, out);
  } else {
    const int terms = w.method == Method::kBf16x3 ? 3 : 1;
    std::uint16_t* buffer = scratch(t_activations, terms * m * k);
    for (int t = 0; t < terms; ++t) {  // the padding rows of each term: bf16 +0
      std::fill(buffer + (t * m + rows) * k, buffer + (t + 1) * m * k, std::uint16_t{0});
    }
    const detail::MatmulProblem first{detail::row_major_desc(m, k, k, dt::bf16), w.weights_desc, out_desc, false};
    if (terms == 1) {
      f32_to_bf16_rows(x, rows, k, ldx, buffer, k);
      detail::run_matmul(first, buffer, w.data, out);
    } else {
      std::uint16_t* hi = buffer;
      std::uint16_t* mid = buffer + m * k;
      std::uint16_t* lo = buffer + 2 * m * k;
      split_f32_to_bf16x3_rows(x, rows, k, ldx, hi, mid, lo);
      // Smallest term first, so the two small contributions are summed before meeting the large one.
      detail::MatmulProblem rest = first;
      rest.accumulate = true;
      detail::run_matmul(first, lo, w.data, out);
      detail::run_matmul(rest, mid, w.data, out);
      detail::run_matmul(rest, hi, w.data, out);
    }
  }
  if (stage_y) copy_rows(out, n, y, ldy, rows, n);
}

}  // namespace

const char* gemm_precision_name(GemmPrecision precision) {
  return precision == GemmPrecision::kF32 ? "f32" : "bf16";
}

void set_f32_gemm_method(F32GemmMethod method) { g_f32_method.store(method, std::memory_order_relaxed); }

F32GemmMethod resolved_f32_gemm_method() {
  const F32GemmMethod m = g_f32_method.load(std::memory_order_relaxed);
  if (!detail::onednn_has_bf16_matmul()) return F32GemmMethod::kNativeF32;
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
  if (weight_is_f32(method)) {
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
    out.impl_ = pack(rounded.data(), dt::bf16, n, k, k, weight_is_f32(method) ? dt::f32 : dt::bf16, precision,
                     method);
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
  for (const detail::RowBlock& block : detail::plan_row_blocks(m, detail::chunk_rows(std::max(impl.k, impl.n)))) {
    gemm_block(x + block.begin * ldx, ldx, impl, y + block.begin * ldy, ldy, block);
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
