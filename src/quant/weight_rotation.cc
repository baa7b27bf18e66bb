// The block products are kernels (kernels/block_rotation.h, AVX-512 where the CPU has it, bit-identical to the
// portable path); here: the blocks of each weight, the norm fold and the dtype rounding around them.
#include "quant/weight_rotation.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/block_rotation.h"
#include "kernels/convert.h"
#include "kernels/threading.h"

namespace moeslim::quant {
namespace {

// Below this many weight elements a transform runs on one thread (thread start-up would dominate).
constexpr std::int64_t kParallelElements = 1 << 16;
// Rows of W loaded and rotated together (right products).
constexpr std::int64_t kRowGroup = 4;

void require_float_matrix(const Tensor& w, const char* what) {
  if (w.rank() != 2 || !is_float_dtype(w.dtype())) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": needs a 2-D BF16, F16 or F32 weight, got " +
                                                 std::string(dtype_name(w.dtype())) + " " +
                                                 shape_to_string(w.shape()));
  }
}

void require_multiple(std::int64_t n, std::int64_t block, const char* what, const Tensor& w) {
  if (block <= 0 || n % block != 0) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": dimension " + std::to_string(n) + " of " +
                                                 shape_to_string(w.shape()) + " is not a multiple of the " +
                                                 std::to_string(block) + "-wide rotation block");
  }
}

// Elements [offset, offset + n) of w as float32 (exact).
void load_f32(const Tensor& w, std::int64_t offset, std::int64_t n, float* dst) {
  if (w.dtype() == DType::kBF16) {
    kernels::bf16_to_f32(w.data<std::uint16_t>() + offset, dst, static_cast<std::size_t>(n));
  } else {
    w.read_f32(static_cast<std::size_t>(offset), static_cast<std::size_t>(n), dst);
  }
}

// Rounds v[0, n) to `dtype` in place (BF16/F16 round to nearest even; F32 unchanged).
void round_in_place(float* v, std::int64_t n, DType dtype) {
  if (dtype == DType::kBF16) {
    kernels::round_to_bf16_rows(v, 1, n, n, v, n);
  } else if (dtype == DType::kF16) {
    for (std::int64_t i = 0; i < n; ++i) v[i] = round_to_float_dtype(v[i], dtype);
  }
}

// Writes src[0, n) rounded to `dtype` at element `offset` of `base`, a buffer of that dtype.
void store_rounded(const float* src, std::int64_t n, DType dtype, std::byte* base, std::int64_t offset) {
  switch (dtype) {
    case DType::kBF16:
      kernels::f32_to_bf16(src, reinterpret_cast<std::uint16_t*>(base) + offset, static_cast<std::size_t>(n));
      return;
    case DType::kF16: {
      std::uint16_t* dst = reinterpret_cast<std::uint16_t*>(base) + offset;
      for (std::int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
      return;
    }
    default:
      std::memcpy(reinterpret_cast<float*>(base) + offset, src, static_cast<std::size_t>(n) * sizeof(float));
  }
}

// x [rows, n] · R → y [rows, n], both dense.
void multiply_rows(const BlockRotation& r, const float* x, std::int64_t rows, std::int64_t n, float* y) {
  const std::int64_t k = r.block;
  for (std::int64_t b = 0; b * k < n; ++b) {
    const float* xb = x + b * k;
    float* yb = y + b * k;
    if (r.is_identity_block(b)) {
      for (std::int64_t row = 0; row < rows; ++row) std::copy(xb + row * n, xb + row * n + k, yb + row * n);
    } else {
      kernels::right_multiply_block(r.matrix.data(), k, xb, rows, n, yb);
    }
  }
}

}  // namespace

void multiply_row(const BlockRotation& r, const float* x, std::int64_t n, float* y) {
  multiply_rows(r, x, 1, n, y);
}

Tensor right_multiply(const Tensor& w, const BlockRotation& r, const Tensor& fold) {
  require_float_matrix(w, "right rotation");
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  require_multiple(cols, r.block, "right rotation", w);
  std::vector<float> gamma;
  if (!fold.empty()) {
    if (!is_float_dtype(fold.dtype()) || fold.numel() != static_cast<std::size_t>(cols)) {
      throw Error(ErrorCode::kInvalidArgument, "norm weight folded into " + shape_to_string(w.shape()) +
                                                   " must be a float vector of " + std::to_string(cols) +
                                                   " elements, got " + shape_to_string(fold.shape()));
    }
    gamma.resize(static_cast<std::size_t>(cols));
    fold.read_f32(0, gamma.size(), gamma.data());
  }
  const DType dtype = w.dtype();
  Tensor out = Tensor::zeros(dtype, w.shape());
  std::byte* base = out.mutable_bytes();
  const std::int64_t groups = (rows + kRowGroup - 1) / kRowGroup;

#pragma omp parallel num_threads(kernels::num_threads()) if (rows * cols >= kParallelElements)
  {
    std::vector<float> x(static_cast<std::size_t>(kRowGroup * cols)), y(x.size());
#pragma omp for schedule(static)
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t row0 = g * kRowGroup, n = std::min(kRowGroup, rows - row0);
      load_f32(w, row0 * cols, n * cols, x.data());
      if (!gamma.empty()) {
        // The fold is its own step: W ⊙ γ in float32, rounded to the dtype before the rotation.
        for (std::int64_t row = 0; row < n; ++row) {
          float* xr = x.data() + row * cols;
          for (std::int64_t c = 0; c < cols; ++c) xr[c] *= gamma[static_cast<std::size_t>(c)];
        }
        round_in_place(x.data(), n * cols, dtype);
      }
      multiply_rows(r, x.data(), n, cols, y.data());
      store_rounded(y.data(), n * cols, dtype, base, row0 * cols);
    }
  }
  return out;
}

Tensor left_multiply_transposed(const BlockRotation& r, const Tensor& w) {
  require_float_matrix(w, "left rotation");
  const std::int64_t rows = w.dim(0), cols = w.dim(1), k = r.block;
  require_multiple(rows, k, "left rotation", w);
  const DType dtype = w.dtype();
  Tensor out = Tensor::zeros(dtype, w.shape());
  std::byte* base = out.mutable_bytes();
  const std::size_t elem = dtype_size(dtype);

  // Work items: one block of k rows × a strip of columns; a strip of k×chunk floats stays in L1/L2.
  const std::int64_t chunk = std::min<std::int64_t>(cols, std::max<std::int64_t>(16, 8192 / k));
  const std::int64_t strips = (cols + chunk - 1) / chunk;
  const std::int64_t items = rows / k * strips;

#pragma omp parallel num_threads(kernels::num_threads()) if (rows * cols >= kParallelElements)
  {
    std::vector<float> in(static_cast<std::size_t>(k * chunk)), acc(in.size());
#pragma omp for schedule(static)
    for (std::int64_t item = 0; item < items; ++item) {
      const std::int64_t b = item / strips, c0 = item % strips * chunk, width = std::min(chunk, cols - c0);
      if (r.is_identity_block(b)) {  // rows pass through unchanged (already in the dtype)
        for (std::int64_t i = 0; i < k; ++i) {
          const std::size_t at = static_cast<std::size_t>((b * k + i) * cols + c0) * elem;
          std::memcpy(base + at, w.bytes() + at, static_cast<std::size_t>(width) * elem);
        }
        continue;
      }
      for (std::int64_t i = 0; i < k; ++i) load_f32(w, (b * k + i) * cols + c0, width, in.data() + i * width);
      kernels::left_multiply_block_transposed(r.matrix.data(), k, in.data(), width, acc.data());
      for (std::int64_t j = 0; j < k; ++j) {
        store_rounded(acc.data() + j * width, width, dtype, base, (b * k + j) * cols + c0);
      }
    }
  }
  return out;
}

}  // namespace moeslim::quant
