#include "kernels/gemm_int8.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "kernels/dnnl_matmul.h"
#include "kernels/row_blocks.h"
#include "kernels/threading.h"

namespace moeslim::kernels {

struct PreparedInt8Weight::Impl {
  std::int64_t n = 0;
  std::int64_t k = 0;
  Int8GemmBackend backend = Int8GemmBackend::kOneDnn;
  // oneDNN: packed layout or the caller's rows seen as [k, n]. Portable: plain rows [n, k] with row stride ld.
  dnnl::memory::desc weights_desc;
  const std::int8_t* data = nullptr;
  std::int64_t ld = 0;
  dnnl::memory packed;
  std::shared_ptr<void> packed_storage;  // owns the packed copy's memory
  std::vector<std::int8_t> plain_copy;
  std::vector<std::int32_t> column_sums;
  std::size_t owned_bytes = 0;
  Tensor borrowed_from;  // keeps a borrowed tensor's memory alive
};

const PreparedInt8Weight::Impl& int8_impl(const PreparedInt8Weight& w) {
  if (w.impl_ == nullptr) throw Error(ErrorCode::kInvalidArgument, "int8 gemm: empty PreparedInt8Weight");
  return *w.impl_;
}

namespace {

using dt = dnnl::memory::data_type;
using Impl = PreparedInt8Weight::Impl;

std::atomic<Int8GemmBackend> g_backend{Int8GemmBackend::kAuto};

bool onednn_int8_is_exact() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
    case dnnl::cpu_isa::avx2_vnni:
      return true;
    default:
      return false;
  }
}

void check_operands(const Impl& w, std::int64_t m, std::int64_t ldx, std::int64_t ldy, const void* x,
                    const void* y) {
  if (m < 0 || ldx < w.k || ldy < w.n || (m > 0 && (x == nullptr || y == nullptr))) {
    throw Error(ErrorCode::kInvalidArgument,
                "int8 gemm: bad operands for weight [" + std::to_string(w.n) + ", " + std::to_string(w.k) +
                    "]: m=" + std::to_string(m) + " ldx=" + std::to_string(ldx) + " ldy=" + std::to_string(ldy));
  }
}

// Exact int32 dot products; four output columns at a time so each activation row is read once per four.
template <typename Act>
void gemm_portable(const Act* x, std::int64_t m, std::int64_t ldx, const Impl& w, std::int32_t* acc,
                   std::int64_t ldacc) {
  const std::int64_t n = w.n;
  const std::int64_t k = w.k;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (num_threads() > 1)
  for (std::int64_t r = 0; r < m; ++r) {
    const Act* xr = x + r * ldx;
    std::int32_t* out = acc + r * ldacc;
    std::int64_t c = 0;
    for (; c + 4 <= n; c += 4) {
      const std::int8_t* w0 = w.data + c * w.ld;
      const std::int8_t* w1 = w0 + w.ld;
      const std::int8_t* w2 = w1 + w.ld;
      const std::int8_t* w3 = w2 + w.ld;
      std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (std::int64_t i = 0; i < k; ++i) {
        const std::int32_t a = xr[i];
        s0 += a * w0[i];
        s1 += a * w1[i];
        s2 += a * w2[i];
        s3 += a * w3[i];
      }
      out[c] = s0;
      out[c + 1] = s1;
      out[c + 2] = s2;
      out[c + 3] = s3;
    }
    for (; c < n; ++c) {
      const std::int8_t* wc = w.data + c * w.ld;
      std::int32_t s = 0;
      for (std::int64_t i = 0; i < k; ++i) s += static_cast<std::int32_t>(xr[i]) * wc[i];
      out[c] = s;
    }
  }
}

thread_local std::vector<std::uint8_t> t_dense_x;
thread_local std::vector<std::int32_t> t_dense_acc;

template <typename T>
T* scratch(std::vector<T>& buffer, std::int64_t elements) {
  if (buffer.size() < static_cast<std::size_t>(elements)) buffer.resize(static_cast<std::size_t>(elements));
  return buffer.data();
}

// One row block through oneDNN's u8·s8 matmul (row_blocks.h). s8 activations are re-biased to u8
// (x ^ 0x80 = x + 128) and 128·Σ_k W[n,k] is subtracted afterwards (exact; see the header). Packed weights run
// only with brgemm kernels, which need dense rows, so strided X or acc are staged through dense buffers.
void onednn_block(const void* x, bool x_is_s8, std::int64_t ldx, const Impl& w, std::int32_t* acc,
                  std::int64_t ldacc, const detail::RowBlock& block) {
  const std::int64_t k = w.k, n = w.n, m = block.padded_rows, rows = block.rows;
  const bool packed = static_cast<bool>(w.packed);
  const bool stage_x = x_is_s8 || block.padded() || (packed && ldx != k);
  const bool stage_y = block.padded() || (packed && ldacc != n);
  const auto* src = static_cast<const std::uint8_t*>(x);
  if (stage_x) {
    std::uint8_t* dense = scratch(t_dense_x, m * k);
    const std::uint8_t flip = x_is_s8 ? 0x80u : 0x00u;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t i = 0; i < k; ++i) dense[r * k + i] = src[r * ldx + i] ^ flip;
    }
    std::fill(dense + rows * k, dense + m * k, std::uint8_t{0});
    src = dense;
  }
  std::int32_t* dst = stage_y ? scratch(t_dense_acc, m * n) : acc;
  const detail::MatmulProblem problem{detail::row_major_desc(m, k, stage_x ? k : ldx, dt::u8), w.weights_desc,
                                      detail::row_major_desc(m, n, stage_y ? n : ldacc, dt::s32)};
  detail::run_matmul(problem, src, w.data, dst);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int32_t* out = acc + r * ldacc;
    if (stage_y) std::memcpy(out, dst + r * n, sizeof(std::int32_t) * n);
    if (x_is_s8) {
      for (std::int64_t c = 0; c < n; ++c) out[c] -= 128 * w.column_sums[static_cast<std::size_t>(c)];
    }
  }
}

template <typename Act>
void gemm_any(const Act* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& weight, std::int32_t* acc,
              std::int64_t ldacc) {
  const Impl& w = int8_impl(weight);
  check_operands(w, m, ldx, ldacc, x, acc);
  if (m == 0) return;
  apply_num_threads();
  if (w.backend == Int8GemmBackend::kPortable) {
    gemm_portable(x, m, ldx, w, acc, ldacc);
    return;
  }
  for (const detail::RowBlock& block : detail::plan_row_blocks(m, detail::chunk_rows(std::max(w.k, w.n)))) {
    onednn_block(x + block.begin * ldx, std::is_same_v<Act, std::int8_t>, ldx, w, acc + block.begin * ldacc,
                 ldacc, block);
  }
}

// In place: the int32 accumulators in y's memory become floats (see Int8Dequant for the formula).
// memcpy reads keep the type pun well defined.
void dequantize_in_place(float* y, std::int64_t m, std::int64_t ldy, const Impl& w, const Int8Dequant& q) {
  const std::int64_t n = w.n;
  for (std::int64_t r = 0; r < m; ++r) {
    float* row = y + r * ldy;
    const std::int64_t zero = q.row_zero ? q.row_zero[r] : 0;
    const float rs = q.row_scale ? q.row_scale[r] : 1.0f;
    for (std::int64_t c = 0; c < n; ++c) {
      std::int32_t a;
      std::memcpy(&a, row + c, sizeof a);
      const std::int64_t v = static_cast<std::int64_t>(a) - zero * w.column_sums[static_cast<std::size_t>(c)] +
                             (q.col_bias ? q.col_bias[c] : 0);
      float f = static_cast<float>(v);
      if (q.row_scale) f = f * rs;
      if (q.col_scale) f = f * q.col_scale[c];
      row[c] = f;
    }
  }
}

std::int32_t* as_accumulators(float* y) {
  static_assert(sizeof(float) == sizeof(std::int32_t));
  return reinterpret_cast<std::int32_t*>(y);
}

}  // namespace

PreparedInt8Weight PreparedInt8Weight::from_s8(const std::int8_t* w, std::int64_t n, std::int64_t k,
                                               std::int64_t ld, WeightStorage storage) {
  if (w == nullptr || n < 1 || k < 1 || ld < k || k > kMaxInt8GemmK) {
    throw Error(ErrorCode::kInvalidArgument, "PreparedInt8Weight::from_s8: bad weight [" + std::to_string(n) +
                                                 ", " + std::to_string(k) + "] with row stride " +
                                                 std::to_string(ld) + " (k at most " +
                                                 std::to_string(kMaxInt8GemmK) + ")");
  }
  auto impl = std::make_shared<Impl>();
  impl->n = n;
  impl->k = k;
  impl->backend = int8_gemm_backend();
  impl->column_sums.resize(static_cast<std::size_t>(n));
  for (std::int64_t c = 0; c < n; ++c) {
    std::int32_t s = 0;
    for (std::int64_t i = 0; i < k; ++i) s += w[c * ld + i];
    impl->column_sums[static_cast<std::size_t>(c)] = s;
  }
  if (storage == WeightStorage::kBorrowed) {
    impl->data = w;
    impl->ld = ld;
    impl->weights_desc = detail::transposed_weight_desc(n, k, ld, dt::s8);
  } else if (impl->backend == Int8GemmBackend::kOneDnn) {
    impl->weights_desc = detail::preferred_weight_desc(n, k, dt::u8, dt::s8, dt::s32);
    impl->packed = detail::owned_weight_memory(impl->weights_desc, impl->packed_storage);
    impl->data = static_cast<const std::int8_t*>(impl->packed.get_data_handle());
    impl->owned_bytes = impl->weights_desc.get_size();
    detail::reorder(detail::transposed_weight_desc(n, k, ld, dt::s8), w, impl->weights_desc,
                    impl->packed.get_data_handle());
  } else {
    impl->plain_copy.resize(static_cast<std::size_t>(n * k));
    for (std::int64_t c = 0; c < n; ++c) std::memcpy(impl->plain_copy.data() + c * k, w + c * ld, k);
    impl->data = impl->plain_copy.data();
    impl->ld = k;
    impl->owned_bytes = impl->plain_copy.size();
  }
  impl->owned_bytes += impl->column_sums.size() * sizeof(std::int32_t);
  PreparedInt8Weight out;
  out.impl_ = std::move(impl);
  return out;
}

PreparedInt8Weight PreparedInt8Weight::from_tensor(const Tensor& w, WeightStorage storage) {
  if (w.rank() != 2 || w.dtype() != DType::kI8) {
    throw Error(ErrorCode::kInvalidArgument, "PreparedInt8Weight::from_tensor: need a 2-D I8 tensor, got " +
                                                 std::string(dtype_name(w.dtype())) + " " +
                                                 shape_to_string(w.shape()));
  }
  PreparedInt8Weight out = from_s8(w.data<std::int8_t>(), w.dim(0), w.dim(1), w.dim(1), storage);
  // Just created and not shared yet, so setting the keep-alive in place is safe.
  if (storage == WeightStorage::kBorrowed) std::const_pointer_cast<Impl>(out.impl_)->borrowed_from = w;
  return out;
}

std::int64_t PreparedInt8Weight::n() const { return impl_ ? impl_->n : 0; }
std::int64_t PreparedInt8Weight::k() const { return impl_ ? impl_->k : 0; }
const std::vector<std::int32_t>& PreparedInt8Weight::column_sums() const { return int8_impl(*this).column_sums; }
std::size_t PreparedInt8Weight::owned_bytes() const { return impl_ ? impl_->owned_bytes : 0; }

void gemm_u8s8_s32(const std::uint8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& weight,
                   std::int32_t* acc, std::int64_t ldacc) {
  gemm_any(x, m, ldx, weight, acc, ldacc);
}

void gemm_s8s8_s32(const std::int8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& weight,
                   std::int32_t* acc, std::int64_t ldacc) {
  gemm_any(x, m, ldx, weight, acc, ldacc);
}

void gemm_u8s8_f32(const std::uint8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& weight,
                   const Int8Dequant& dequant, float* y, std::int64_t ldy) {
  gemm_u8s8_s32(x, m, ldx, weight, as_accumulators(y), ldy);
  if (m > 0) dequantize_in_place(y, m, ldy, int8_impl(weight), dequant);
}

void gemm_s8s8_f32(const std::int8_t* x, std::int64_t m, std::int64_t ldx, const PreparedInt8Weight& weight,
                   const Int8Dequant& dequant, float* y, std::int64_t ldy) {
  gemm_s8s8_s32(x, m, ldx, weight, as_accumulators(y), ldy);
  if (m > 0) dequantize_in_place(y, m, ldy, int8_impl(weight), dequant);
}

void set_int8_gemm_backend(Int8GemmBackend backend) { g_backend.store(backend, std::memory_order_relaxed); }

Int8GemmBackend int8_gemm_backend() {
  const Int8GemmBackend b = g_backend.load(std::memory_order_relaxed);
  if (b != Int8GemmBackend::kAuto) return b;
  return onednn_int8_is_exact() ? Int8GemmBackend::kOneDnn : Int8GemmBackend::kPortable;
}

const char* int8_gemm_backend_name(Int8GemmBackend backend) {
  switch (backend) {
    case Int8GemmBackend::kAuto: return "auto";
    case Int8GemmBackend::kOneDnn: return "onednn";
    case Int8GemmBackend::kPortable: return "portable";
  }
  return "?";
}

}  // namespace moeslim::kernels
