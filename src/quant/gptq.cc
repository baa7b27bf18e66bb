// The rows of the weight are independent given U, so each task carries kTileRows rows through every column:
// its working rows (double) stay in cache and U is streamed once per task.
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"
#include "quant/hessian.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {
namespace {

constexpr std::int64_t kTileRows = 16;
// Columns of a lazy batch update done together: the tile's rows of them stay in L1 across the block's columns.
constexpr std::int64_t kLazyChunk = 256;
// out·in² multiply-adds below which the rows run on one thread.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 22;

using kernels::CodeRange;

CodeRange code_range(WeightBits bits) {
  return bits == WeightBits::kInt4 ? CodeRange{-8.0f, 7.0f} : CodeRange{-128.0f, 127.0f};
}

[[noreturn]] void invalid(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, "GPTQ: " + what); }

void check_options(const GptqOptions& o) {
  if (!(o.dampening > 0.0) || !std::isfinite(o.dampening)) {
    invalid("dampening must be a positive number, got " + std::to_string(o.dampening));
  }
  if (o.block_size < 1) invalid("block size must be at least 1, got " + std::to_string(o.block_size));
  if (o.group_size < 0) invalid("group size must be 0 (per row) or positive, got " + std::to_string(o.group_size));
  if (!is_float_dtype(o.float_dtype)) {
    invalid("model float dtype must be BF16, F16 or F32, got " + std::string(dtype_name(o.float_dtype)));
  }
}

// The scale (and zero point) of each of `rows` rows over `width` working weights (row stride ld), as float32.
// Symmetric: the v1 minmax quantizer computes them (its codes are not needed). Asymmetric: gptq.h's formulas.
void group_params(const double* w, std::int64_t ld, std::int64_t rows, std::int64_t width, const GptqOptions& o,
                  float* scale, float* zero) {
  if (o.symmetric) {
    Tensor slice = Tensor::zeros(DType::kF32, {rows, width});
    float* p = slice.mutable_data<float>();
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < width; ++c) p[r * width + c] = static_cast<float>(w[r * ld + c]);
    }
    const ChannelQuantizedWeight q = quantize_weight_minmax_v1(slice, {.bits = o.bits, .float_dtype = o.float_dtype});
    std::copy_n(q.scale.data<float>(), rows, scale);
    std::fill_n(zero, rows, 0.0f);
    return;
  }
  const CodeRange range = code_range(o.bits);
  const float levels = range.hi - range.lo;  // 2^b − 1
  const DType dt = o.float_dtype;
  for (std::int64_t r = 0; r < rows; ++r) {
    float mn = 0.0f, mx = 0.0f;
    for (std::int64_t c = 0; c < width; ++c) {
      const float v = static_cast<float>(w[r * ld + c]);
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
    const float hi = round_to_float_dtype(mx / levels, dt), lo = round_to_float_dtype(mn / levels, dt);
    scale[r] = std::max(round_to_float_dtype(hi - lo, dt), round_to_float_dtype(kScaleEpsilon, dt));
    // −mn/s ≤ 2^b − 1 but for the roundings of s; the clamp keeps z a code.
    zero[r] = std::min(std::nearbyint(round_to_float_dtype(-mn / scale[r], dt)) + range.lo, range.hi);
  }
}

// clamp(rne(dt(x / s)) + z, lo, hi); the symmetric case through the row kernel the v1 quantizers use.
std::int8_t quantize_value(float x, float s, float z, DType dt, CodeRange range) {
  std::int8_t q;
  if (z == 0.0f) {
    kernels::quantize_row_codes(&x, 1, s, dt, range, &q);
  } else {
    q = static_cast<std::int8_t>(std::clamp(std::nearbyint(round_to_float_dtype(x / s, dt)) + z, range.lo, range.hi));
  }
  return q;
}

struct Scratch {
  std::vector<float> row;
  std::vector<double> w;    // [kTileRows, in], quantization order
  std::vector<double> err;  // [kTileRows, block_size]: the current block's err = (w − deq) / U_ii
};

// Step 5 of gptq.h for the rows [r0, r0 + rows).
void quantize_rows(const Tensor& weight, std::int64_t r0, std::int64_t rows, const GptqHessian& h,
                   const GptqOptions& o, GptqResult& out, Scratch& s) {
  const std::int64_t n = h.columns, bs = o.block_size;
  const std::int64_t gw = o.group_size > 0 ? o.group_size : n, groups = n / gw;
  const CodeRange range = code_range(o.bits);
  s.row.resize(static_cast<std::size_t>(n));
  s.w.resize(static_cast<std::size_t>(rows * n));
  s.err.resize(static_cast<std::size_t>(rows * bs));
  for (std::int64_t t = 0; t < rows; ++t) {
    weight.read_f32(static_cast<std::size_t>((r0 + t) * n), static_cast<std::size_t>(n), s.row.data());
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t c = h.order[static_cast<std::size_t>(k)];
      if (!std::isfinite(s.row[c])) {
        invalid("weight row " + std::to_string(r0 + t) + " holds a NaN or an infinity; it cannot be quantized");
      }
      s.w[static_cast<std::size_t>(t * n + k)] = h.dead[static_cast<std::size_t>(c)] ? 0.0 : s.row[c];
    }
  }
  std::int8_t* codes = out.codes.mutable_data<std::int8_t>() + r0 * n;
  float* scales = out.scale.mutable_data<float>() + r0 * groups;
  float* zeros = o.symmetric ? nullptr : out.zero_point.mutable_data<float>() + r0 * groups;
  float scale[kTileRows], zero[kTileRows];
  const double* u = h.inverse_factor.data();
  double* w = s.w.data();
  double* err = s.err.data();

  std::int64_t b1 = 0;
  for (std::int64_t b0 = 0; b0 < n; b0 = b1) {
    // A block ends at the next group's first column, so that the group's parameters see all earlier updates.
    b1 = std::min(b0 + bs, (b0 / gw + 1) * gw);
    for (std::int64_t i = b0; i < b1; ++i) {
      if (i % gw == 0) {
        group_params(w + i, n, rows, gw, o, scale, zero);
        for (std::int64_t t = 0; t < rows; ++t) {
          scales[t * groups + i / gw] = scale[t];
          if (zeros) zeros[t * groups + i / gw] = zero[t];
        }
      }
      const double* ui = u + i * n;
      for (std::int64_t t = 0; t < rows; ++t) {
        double* wt = w + t * n;
        const std::int8_t q = quantize_value(static_cast<float>(wt[i]), scale[t], zero[t], o.float_dtype, range);
        codes[t * n + h.order[static_cast<std::size_t>(i)]] = q;
        const double e = (wt[i] - (static_cast<double>(q) - zero[t]) * static_cast<double>(scale[t])) / ui[i];
        err[t * bs + (i - b0)] = e;
        for (std::int64_t j = i + 1; j < b1; ++j) wt[j] -= e * ui[j];
      }
    }
    // The lazy batch: W[:, b1:] −= Err · U[b0:b1, b1:], each element's terms in ascending i.
    for (std::int64_t j0 = b1; j0 < n; j0 += kLazyChunk) {
      const std::int64_t j1 = std::min(j0 + kLazyChunk, n);
      for (std::int64_t i = b0; i < b1; ++i) {
        const double* ui = u + i * n;
        for (std::int64_t t = 0; t < rows; ++t) {
          const double e = err[t * bs + (i - b0)];
          double* wt = w + t * n;
          for (std::int64_t j = j0; j < j1; ++j) wt[j] -= e * ui[j];
        }
      }
    }
  }
}

}  // namespace

GptqHessian prepare_gptq_hessian(std::span<const double> hessian, std::int64_t columns, const GptqOptions& options) {
  check_options(options);
  const std::int64_t n = columns;
  if (n < 1 || hessian.size() != static_cast<std::size_t>(n * n)) {
    invalid("a Hessian of " + std::to_string(n) + " columns needs " + std::to_string(n) + "² values, got " +
            std::to_string(hessian.size()));
  }
  auto at = [n](std::int64_t i, std::int64_t j) { return static_cast<std::size_t>(i * n + j); };
  std::vector<double> diag(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = i; j < n; ++j) {
      if (!std::isfinite(hessian[at(i, j)])) {
        invalid("the Hessian holds a NaN or an infinity at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
      }
    }
    diag[static_cast<std::size_t>(i)] = hessian[at(i, i)];
  }
  GptqHessian h;
  h.columns = n;
  h.dampening = options.dampening;
  h.act_order = options.act_order;
  h.dead.assign(static_cast<std::size_t>(n), 0);
  double trace = 0.0;
  for (std::size_t i = 0; i < diag.size(); ++i) {
    if (diag[i] == 0.0) {
      diag[i] = 1.0;
      h.dead[i] = 1;
    }
    trace += diag[i];
  }
  h.order.resize(static_cast<std::size_t>(n));
  std::iota(h.order.begin(), h.order.end(), std::int64_t{0});
  if (options.act_order) {
    std::stable_sort(h.order.begin(), h.order.end(), [&](std::int64_t a, std::int64_t b) {
      return diag[static_cast<std::size_t>(a)] > diag[static_cast<std::size_t>(b)];
    });
  }
  h.lambda = options.dampening * (trace / static_cast<double>(n));
  // H in quantization order, both triangles, from the upper one, with the fixed and dampened diagonal.
  std::vector<double> permuted(hessian.size());
  for (std::int64_t a = 0; a < n; ++a) {
    const std::int64_t i = h.order[static_cast<std::size_t>(a)];
    for (std::int64_t b = 0; b < n; ++b) {
      const std::int64_t j = h.order[static_cast<std::size_t>(b)];
      permuted[at(a, b)] = hessian[at(std::min(i, j), std::max(i, j))];
    }
    permuted[at(a, a)] = diag[static_cast<std::size_t>(i)] + h.lambda;
  }
  try {
    h.inverse_factor = inverse_cholesky_upper(std::move(permuted), n);
  } catch (const Error& e) {
    invalid(e.detail() + (options.act_order ? " (columns in act_order)" : "") + ", after dampening λ = " +
            std::to_string(h.lambda) + "; quantize this weight without calibration data instead");
  }
  return h;
}

GptqResult gptq_quantize(const Tensor& weight, const GptqHessian& hessian, const GptqOptions& options) {
  check_options(options);
  if (weight.rank() != 2 || !is_float_dtype(weight.dtype())) {
    invalid("weight to quantize must be a 2-D float tensor, got " + std::string(dtype_name(weight.dtype())) + " " +
            shape_to_string(weight.shape()));
  }
  const std::int64_t out = weight.dim(0), in = weight.dim(1);
  if (hessian.columns != in) {
    invalid("weight " + shape_to_string(weight.shape()) + " needs a Hessian of " + std::to_string(in) +
            " columns, got " + std::to_string(hessian.columns));
  }
  if (hessian.dampening != options.dampening || hessian.act_order != options.act_order) {
    invalid("the Hessian was prepared with other dampening or act_order options");
  }
  if (options.group_size > 0 && in % options.group_size != 0) {
    invalid("group size " + std::to_string(options.group_size) + " does not divide the " + std::to_string(in) +
            " input columns");
  }
  const std::int64_t groups = options.group_size > 0 ? in / options.group_size : 1;
  GptqResult result;
  result.codes = Tensor::zeros(DType::kI8, {out, in});
  result.scale = Tensor::zeros(DType::kF32, {out, groups});
  if (!options.symmetric) result.zero_point = Tensor::zeros(DType::kF32, {out, groups});

  const std::int64_t tiles = (out + kTileRows - 1) / kTileRows;
  const bool parallel = out * in * in >= kParallelWork;
  std::vector<Scratch> scratch(static_cast<std::size_t>(kernels::task_worker_count(parallel)));
  kernels::run_tasks(tiles, parallel, [&](std::int64_t tile, int worker) {
    const std::int64_t r0 = tile * kTileRows;
    quantize_rows(weight, r0, std::min(kTileRows, out - r0), hessian, options, result,
                  scratch[static_cast<std::size_t>(worker)]);
  });

  if (options.act_order) {
    result.order = hessian.order;
    if (options.group_size > 0) {
      result.group_index.resize(static_cast<std::size_t>(in));
      for (std::int64_t k = 0; k < in; ++k) {
        result.group_index[static_cast<std::size_t>(hessian.order[static_cast<std::size_t>(k)])] =
            static_cast<std::int32_t>(k / options.group_size);
      }
    }
  }
  return result;
}

GptqResult gptq_quantize(const Tensor& weight, std::span<const double> hessian, const GptqOptions& options) {
  if (weight.rank() != 2) {
    invalid("weight to quantize must be 2-D, got " + shape_to_string(weight.shape()));
  }
  return gptq_quantize(weight, prepare_gptq_hessian(hessian, weight.dim(1), options), options);
}

}  // namespace moeslim::quant
