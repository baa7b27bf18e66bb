// Integer W8A8 / W4A8 linears (see quantized_linear.h for the arithmetic).
//
// Activations are quantized straight to u8 = x_q + 128 (the form oneDNN's int8 matmul takes without a staging
// copy); the +128 adds 128·Σ_k W to every accumulator, which the dequantisation takes off again exactly, so
// the result is that of the signed codes. The row quantizers and the dequantisation are kernels
// (kernels/quant_rows.h) with AVX-512 forms that give bit-identical results (the scalar ones cost more than the
// GEMM itself). Codes and scales live in per-thread buffers reused by every linear.
#include "model/quantized_linear.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/gemm_int8.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"

namespace moeslim::model {
namespace {

// Per-thread buffers: activation codes [rows, k] and per-row scales and flags.
struct Scratch {
  std::vector<std::uint8_t> codes;
  std::vector<float> row_scale;
  std::vector<std::uint8_t> row_bad;
};

Scratch& scratch_for(std::int64_t rows, std::int64_t k) {
  thread_local Scratch s;
  const auto r = static_cast<std::size_t>(rows);
  if (s.codes.size() < r * static_cast<std::size_t>(k)) s.codes.resize(r * static_cast<std::size_t>(k));
  if (s.row_scale.size() < r) s.row_scale.resize(r);
  if (s.row_bad.size() < r) s.row_bad.resize(r);
  return s;
}

// Dequantisation, in place: y's memory holds the int32 accumulators of the u8 codes, acc_u = Σ_k (x_q + 128)·W,
// so the signed-code sum is acc_u − 128·Σ_k W (exact in int32: |Σ x_q·W| ≤ 128·128·K < 2^31 for the GEMM's K).
//   static:  y = float(acc_u + (quant_bias − 128·Σ_k W)) · deq_scale   — the integer sum formed exactly in
//            double (both terms < 2^53) and rounded to float once, as float(int64) would;
//   dynamic: y = float(acc_u − 128·Σ_k W) · s_t · weight_scale.
// (kernels::gemm_u8s8_f32 computes the same but element by element in int64; kernels::dequantize_static_row and
// dequantize_dynamic_row run at memory speed.)
std::int32_t* as_accumulators(float* y) {
  static_assert(sizeof(float) == sizeof(std::int32_t));
  return reinterpret_cast<std::int32_t*>(y);
}

// 128·Σ_k W[n, k] per output: what the +128 of the u8 codes adds to each accumulator.
std::vector<std::int32_t> code_shift_sums(const kernels::PreparedInt8Weight& w) {
  std::vector<std::int32_t> out(w.column_sums());
  for (std::int32_t& v : out) v *= 128;
  return out;
}

// Rows are quantized in parallel only when there is enough work to pay for waking the threads.
bool parallel_rows(std::int64_t rows, std::int64_t k) { return kernels::num_threads() > 1 && rows * k >= (1 << 16); }

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kInvalidArgument, "quantized linear: " + what);
}

std::vector<float> f32_values(const Tensor& t, std::int64_t count, const char* what) {
  require(t.dtype() == DType::kF32 && static_cast<std::int64_t>(t.numel()) == count,
          std::string(what) + " must be F32 with " + std::to_string(count) + " elements, got " +
              std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()));
  std::vector<float> out(static_cast<std::size_t>(count));
  std::memcpy(out.data(), t.bytes(), out.size() * sizeof(float));  // views need not be aligned
  return out;
}

kernels::PreparedInt8Weight prepare(const Tensor& weight) {
  require(weight.dtype() == DType::kI8 && weight.rank() == 2 && weight.dim(0) > 0 && weight.dim(1) > 0,
          "weight must be a non-empty 2-D I8 tensor, got " + std::string(dtype_name(weight.dtype())) + " " +
              shape_to_string(weight.shape()));
  // The codes used in place, no copy: a layer's experts are most of its memory, and a packed copy held them
  // twice during the quantized pass (7.5 GB more for a Qwen3-Coder-480B layer). At expert shapes on one thread
  // 4–14 % slower than oneDNN's blocked copy (bench/gemm_bench's "int8 in place" column), the same bits.
  return kernels::PreparedInt8Weight::from_tensor(weight, kernels::WeightStorage::kBorrowed);
}

class W8A8StaticLinear final : public Linear {
 public:
  W8A8StaticLinear(const Tensor& weight, float input_scale, float input_offset, const Tensor& deq_scale,
                   const Tensor& quant_bias)
      : weight_(prepare(weight)), input_scale_(input_scale), input_offset_(input_offset) {
    require(std::isfinite(input_scale) && input_scale > 0, "input_scale must be finite and positive, got " +
                                                               std::to_string(input_scale));
    require(std::isfinite(input_offset), "input_offset must be finite");
    deq_scale_ = f32_values(deq_scale, weight_.n(), "deq_scale");
    require(quant_bias.dtype() == DType::kI32 && static_cast<std::int64_t>(quant_bias.numel()) == weight_.n(),
            "quant_bias must be I32 [" + std::to_string(weight_.n()) + "], got " +
                std::string(dtype_name(quant_bias.dtype())) + " " + shape_to_string(quant_bias.shape()));
    std::vector<std::int32_t> qb(static_cast<std::size_t>(weight_.n()));
    std::memcpy(qb.data(), quant_bias.bytes(), qb.size() * sizeof(std::int32_t));
    const std::vector<std::int32_t> shift = code_shift_sums(weight_);
    column_bias_.resize(qb.size());
    for (std::size_t j = 0; j < qb.size(); ++j) column_bias_[j] = static_cast<double>(qb[j]) - shift[j];
  }

  std::int64_t in_features() const override { return weight_.k(); }
  std::int64_t out_features() const override { return weight_.n(); }
  std::string kind() const override { return "w8a8"; }
  bool integer_arithmetic() const override { return true; }

  void forward(const float* x, std::int64_t rows, float* y) const override {
    if (rows <= 0) return;
    const std::int64_t k = weight_.k(), n = weight_.n();
    Scratch& s = scratch_for(rows, k);
    std::uint8_t* codes = s.codes.data();
    std::uint8_t* bad = s.row_bad.data();
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (parallel_rows(rows, k))
    for (std::int64_t r = 0; r < rows; ++r) {
      const bool finite =
          kernels::quantize_activation_row_static(x + r * k, k, input_scale_, input_offset_, codes + r * k);
      bad[r] = finite ? 0 : 1;
    }
    kernels::gemm_u8s8_s32(codes, rows, k, weight_, as_accumulators(y), n);
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (parallel_rows(rows, n))
    for (std::int64_t r = 0; r < rows; ++r) {
      if (bad[r] != 0) {
        std::fill(y + r * n, y + (r + 1) * n, std::numeric_limits<float>::quiet_NaN());
      } else {
        kernels::dequantize_static_row(y + r * n, n, column_bias_.data(), deq_scale_.data());
      }
    }
  }

 private:
  kernels::PreparedInt8Weight weight_;
  float input_scale_;
  float input_offset_;
  std::vector<float> deq_scale_;
  std::vector<double> column_bias_;  // quant_bias − 128·Σ_k W, exact
};

}  // namespace

void check_int4_codes(const Tensor& codes) {
  if (codes.dtype() != DType::kI8 || codes.rank() != 2 || codes.dim(0) <= 0 || codes.dim(1) <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "int4 codes must be a non-empty 2-D I8 tensor [out, in], got " +
                                                 std::string(dtype_name(codes.dtype())) + " " +
                                                 shape_to_string(codes.shape()));
  }
  const std::int64_t cols = codes.dim(1);
  const auto* src = codes.data<std::int8_t>();
  for (std::int64_t i = 0; i < codes.dim(0) * cols; ++i) {
    if (src[i] < -8 || src[i] > 7) {
      throw Error(ErrorCode::kInvalidArgument, "int4 code " + std::to_string(src[i]) + " at row " +
                                                   std::to_string(i / cols) + ", column " + std::to_string(i % cols) +
                                                   " is outside [-8, 7]");
    }
  }
}

namespace {

class DynamicInt8Linear final : public Linear {
 public:
  DynamicInt8Linear(const Tensor& codes, const Tensor& weight_scale, const Tensor& bias, std::string kind)
      : weight_(prepare(codes)), code_shift_(code_shift_sums(weight_)), kind_(std::move(kind)) {
    weight_scale_ = f32_values(weight_scale, weight_.n(), "weight_scale");
    if (!bias.empty()) bias_ = f32_values(bias, weight_.n(), "bias");
  }

  std::int64_t in_features() const override { return weight_.k(); }
  std::int64_t out_features() const override { return weight_.n(); }
  std::string kind() const override { return kind_; }
  bool integer_arithmetic() const override { return true; }

  void forward(const float* x, std::int64_t rows, float* y) const override {
    if (rows <= 0) return;
    const std::int64_t k = weight_.k(), n = weight_.n();
    Scratch& s = scratch_for(rows, k);
    std::uint8_t* codes = s.codes.data();
    float* scales = s.row_scale.data();
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (parallel_rows(rows, k))
    for (std::int64_t r = 0; r < rows; ++r) {
      scales[r] = kernels::quantize_activation_row_dynamic(x + r * k, k, codes + r * k);
    }
    kernels::gemm_u8s8_s32(codes, rows, k, weight_, as_accumulators(y), n);
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (parallel_rows(rows, n))
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = y + r * n;
      kernels::dequantize_dynamic_row(row, n, code_shift_.data(), scales[r], weight_scale_.data());
      for (std::size_t j = 0; j < bias_.size(); ++j) row[j] += bias_[j];
    }
  }

 private:
  kernels::PreparedInt8Weight weight_;
  std::vector<std::int32_t> code_shift_;  // 128·Σ_k W
  std::vector<float> weight_scale_;
  std::vector<float> bias_;
  std::string kind_;
};

}  // namespace

std::unique_ptr<Linear> make_w8a8_static_linear(const Tensor& weight, float input_scale, float input_offset,
                                                const Tensor& deq_scale, const Tensor& quant_bias) {
  return std::make_unique<W8A8StaticLinear>(weight, input_scale, input_offset, deq_scale, quant_bias);
}

std::unique_ptr<Linear> make_w8a8_dynamic_linear(const Tensor& weight, const Tensor& weight_scale,
                                                 const Tensor& bias) {
  return std::make_unique<DynamicInt8Linear>(weight, weight_scale, bias, "w8a8_dynamic");
}

std::unique_ptr<Linear> make_w4a8_dynamic_linear(const Tensor& packed_weight, const Tensor& weight_scale,
                                                 const Tensor& bias) {
  return std::make_unique<DynamicInt8Linear>(unpack_int4_rows(packed_weight), weight_scale, bias, "w4a8_dynamic");
}

std::unique_ptr<Linear> make_w4a8_dynamic_linear_from_codes(const Tensor& codes, const Tensor& weight_scale,
                                                            const Tensor& bias) {
  check_int4_codes(codes);
  return std::make_unique<DynamicInt8Linear>(codes, weight_scale, bias, "w4a8_dynamic");
}

Tensor unpack_int4_rows(const Tensor& packed) {
  require(packed.dtype() == DType::kI8 && packed.rank() == 2,
          "packed int4 weight must be a 2-D I8 tensor, got " + std::string(dtype_name(packed.dtype())) + " " +
              shape_to_string(packed.shape()));
  const std::int64_t rows = packed.dim(0), cols = packed.dim(1);
  Tensor out = Tensor::zeros(DType::kI8, {2 * rows, cols});
  const auto* src = packed.data<std::uint8_t>();
  auto* dst = out.mutable_data<std::int8_t>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint8_t* in = src + r * cols;
    std::int8_t* even = dst + (2 * r) * cols;
    std::int8_t* odd = even + cols;
    for (std::int64_t c = 0; c < cols; ++c) {
      // Sign-extend each nibble: shift it to the top of an int8, then arithmetic-shift back down.
      even[c] = static_cast<std::int8_t>(static_cast<std::int8_t>(in[c] << 4) >> 4);
      odd[c] = static_cast<std::int8_t>(static_cast<std::int8_t>(in[c]) >> 4);
    }
  }
  return out;
}

Tensor pack_int4_rows(const Tensor& codes) {
  check_int4_codes(codes);
  const std::int64_t rows = codes.dim(0), cols = codes.dim(1);
  if (rows % 2 != 0) {
    throw Error(ErrorCode::kInvalidArgument, "int4 codes are packed in pairs of output rows, but there are " +
                                                 std::to_string(rows) + " rows (odd)");
  }
  const auto* src = codes.data<std::int8_t>();
  Tensor out = Tensor::zeros(DType::kI8, {rows / 2, cols});
  auto* dst = out.mutable_data<std::uint8_t>();
  for (std::int64_t r = 0; r < rows / 2; ++r) {
    const std::int8_t* even = src + (2 * r) * cols;
    const std::int8_t* odd = even + cols;
    for (std::int64_t c = 0; c < cols; ++c) {
      // Unsigned arithmetic: shifting a negative code left is what the format means, but not portable C++.
      dst[r * cols + c] = static_cast<std::uint8_t>((static_cast<std::uint8_t>(odd[c]) << 4) |
                                                    (static_cast<std::uint8_t>(even[c]) & 0x0F));
    }
  }
  return out;
}

}  // namespace moeslim::model
