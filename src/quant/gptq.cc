// The working weights are the weight transposed, [in, out] in quantization order (row k = column order[k] of W),
// so that a column of W is a contiguous vector over the output rows: quantizing it, its rank-one updates and the
// C of every GEMM run along contiguous memory. Two copies: the original W (for D = W − deq(Q)) and W̃, which
// takes the compensation.
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/dense_linalg.h"
#include "kernels/quant_rows.h"
#include "quant/hessian.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {
namespace {

// Columns quantized between two GEMM updates of their block: the rank-one updates inside cost out·16/2
// multiply-adds per column as vector loops; the rest of the block is GEMM work.
constexpr std::int64_t kSubBlock = 16;
// Weight rows read (and transposed) at a time: 16 floats of a working column fill one cache line. They are
// read into rows read_stride(in) floats apart (a multiple of 16, plus 16 so that the 16 rows do not share cache
// sets when `in` is a power of two).
constexpr std::int64_t kReadRows = 16;
std::int64_t read_stride(std::int64_t n) { return (n + 15) / 16 * 16 + 16; }
// Side of the tiles in which the codes are transposed back to [out, in].
constexpr std::int64_t kCodeTile = 64;

using kernels::CodeRange;

CodeRange code_range(const GptqOptions& o) {
  const CodeRange full = o.bits == WeightBits::kInt4 ? CodeRange{-8.0f, 7.0f} : CodeRange{-128.0f, 127.0f};
  return o.narrow_range ? CodeRange{-full.hi, full.hi} : full;
}

[[noreturn]] void invalid(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, "GPTQ: " + what); }

void check_options(const GptqOptions& o) {
  if (!(o.dampening > 0.0) || !std::isfinite(o.dampening)) {
    invalid("dampening must be a positive number, got " + std::to_string(o.dampening));
  }
  if (o.block_size < 1) invalid("block size must be at least 1, got " + std::to_string(o.block_size));
  if (o.narrow_range && !o.symmetric) invalid("a narrow code range is for symmetric quantization only");
  if (o.group_size < 0) invalid("group size must be 0 (per row) or positive, got " + std::to_string(o.group_size));
  if (!is_float_dtype(o.float_dtype)) {
    invalid("model float dtype must be BF16, F16 or F32, got " + std::string(dtype_name(o.float_dtype)));
  }
}

// check_options, and a 2-D float weight whose columns the group size divides.
void check_weight(const Tensor& weight, const GptqOptions& o) {
  check_options(o);
  if (weight.rank() != 2 || !is_float_dtype(weight.dtype())) {
    invalid("weight to quantize must be a 2-D float tensor, got " + std::string(dtype_name(weight.dtype())) + " " +
            shape_to_string(weight.shape()));
  }
  if (o.group_size > 0 && weight.dim(1) % o.group_size != 0) {
    invalid("group size " + std::to_string(o.group_size) + " does not divide the " + std::to_string(weight.dim(1)) +
            " input columns");
  }
}

// Codes, scales (and zero points when asymmetric) of an [out, n] weight in `groups` groups, all zero.
GptqResult zero_result(std::int64_t out, std::int64_t n, std::int64_t groups, const GptqOptions& o) {
  GptqResult result;
  result.codes = Tensor::zeros(DType::kI8, {out, n});
  result.scale = Tensor::zeros(DType::kF32, {out, groups});
  if (!o.symmetric) result.zero_point = Tensor::zeros(DType::kF32, {out, groups});
  return result;
}

// Whether v[0, n) holds no NaN and no infinity (exponent all ones), as an integer reduction that vectorises.
bool all_finite(const float* v, std::int64_t n) {
  std::uint32_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, v + i, 4);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// The scale and zero point of every output row over `width` working columns (rows of wt, `out` floats each, ld
// apart). Symmetric: quantize_weight_minmax_v1's max(dt(max|w| / hi), dt(eps32)). Asymmetric: gptq.h's formulas.
void group_params(const float* wt, std::int64_t ld, std::int64_t width, std::int64_t out, const GptqOptions& o,
                  float* scale, float* zero) {
  const CodeRange range = code_range(o);
  const DType dt = o.float_dtype;
  const float eps = round_to_float_dtype(kScaleEpsilon, dt);
  if (o.symmetric) {
    std::fill_n(scale, out, 0.0f);  // max|w| first
    for (std::int64_t k = 0; k < width; ++k) {
      const float* w = wt + k * ld;
      for (std::int64_t r = 0; r < out; ++r) {
        const float a = std::fabs(w[r]);
        scale[r] = a > scale[r] ? a : scale[r];
      }
    }
    for (std::int64_t r = 0; r < out; ++r) {
      scale[r] = std::max(round_to_float_dtype(scale[r] / range.hi, dt), eps);
      zero[r] = 0.0f;
    }
    return;
  }
  std::fill_n(scale, out, 0.0f);  // min(min w, 0), kept in `scale` until the end
  std::fill_n(zero, out, 0.0f);   // max(max w, 0)
  for (std::int64_t k = 0; k < width; ++k) {
    const float* w = wt + k * ld;
    for (std::int64_t r = 0; r < out; ++r) {
      scale[r] = w[r] < scale[r] ? w[r] : scale[r];
      zero[r] = w[r] > zero[r] ? w[r] : zero[r];
    }
  }
  const float levels = range.hi - range.lo;  // 2^b − 1
  for (std::int64_t r = 0; r < out; ++r) {
    const float mn = scale[r], mx = zero[r];
    const float hi = round_to_float_dtype(mx / levels, dt), lo = round_to_float_dtype(mn / levels, dt);
    scale[r] = std::max(round_to_float_dtype(hi - lo, dt), eps);
    // −mn/s ≤ 2^b − 1 but for the roundings of s; the min keeps z a code.
    zero[r] = std::min(std::nearbyint(round_to_float_dtype(-mn / scale[r], dt)) + range.lo, range.hi);
  }
}

// The rows of group [k, k + width) as GPTQ's recursion has them when column k is reached, into `rows`
// [width, out] (row stride ld): W_G + (W̃_G − W_G)·F_GG⁻ᵀ (gptq.h), i.e. Wᵀ_G + F_GG⁻¹·(W̃ᵀ_G − Wᵀ_G) in the
// transposed layout. `inverse` and `delta` are scratch of width² and width·ld floats.
void group_start_weights(const float* original, const float* working, std::int64_t ld, const float* f,
                         std::int64_t n, std::int64_t k, std::int64_t width, std::int64_t out, float* inverse,
                         float* delta, float* rows) {
  for (std::int64_t a = 0; a < width; ++a) {  // F_GG: lower with a unit diagonal, zeros above
    for (std::int64_t b = 0; b < width; ++b) inverse[a * width + b] = b <= a ? f[(k + a) * n + k + b] : 0.0f;
  }
  kernels::invert_lower_triangular(inverse, width, width);
  const float* w0 = original + k * ld;
  const float* w = working + k * ld;
  for (std::int64_t a = 0; a < width; ++a) {
    for (std::int64_t r = 0; r < out; ++r) delta[a * ld + r] = w[a * ld + r] - w0[a * ld + r];
  }
  kernels::matmul(kernels::row_major(inverse, width, width, width), kernels::row_major(delta, width, out, ld), rows,
                  ld, /*accumulate=*/false);
  for (std::int64_t a = 0; a < width; ++a) {
    for (std::int64_t r = 0; r < out; ++r) rows[a * ld + r] += w0[a * ld + r];
  }
}

// static_groups: the parameters of every group of group_size neighbouring original columns, from the working
// weights before any update (`original`, [n, ld] in quantization order) into static_scale/static_zero
// [groups, out] and into the result's scales/zeros [out, groups] (zeros may be null). `rows`: group_size·ld floats.
void static_group_params(const float* original, std::int64_t ld, const std::vector<std::int64_t>& order,
                         const GptqOptions& o, std::int64_t out, float* rows, float* static_scale,
                         float* static_zero, float* scales, float* zeros) {
  const std::int64_t n = static_cast<std::int64_t>(order.size()), groups = n / o.group_size;
  std::vector<std::int64_t> position(order.size());  // position[c]: where original column c is quantized
  for (std::int64_t k = 0; k < n; ++k) position[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = k;
  for (std::int64_t g = 0; g < groups; ++g) {
    for (std::int64_t a = 0; a < o.group_size; ++a) {
      const float* src = original + position[static_cast<std::size_t>(g * o.group_size + a)] * ld;
      std::copy_n(src, out, rows + a * ld);
    }
    float* scale = static_scale + g * out;
    float* zero = static_zero + g * out;
    group_params(rows, ld, o.group_size, out, o, scale, zero);
    for (std::int64_t r = 0; r < out; ++r) {
      scales[r * groups + g] = scale[r];
      if (zeros != nullptr) zeros[r * groups + g] = zero[r];
    }
  }
}

// Wᵀ in quantization order into wt and wt2 [n, out] (row stride ldw), dead columns zero, through `rows`
// (kReadRows·read_stride(n) floats of scratch). kInvalidArgument naming the first weight row that holds a NaN or
// an infinity.
void load_transposed(const Tensor& weight, const GptqHessian& h, float* rows, float* wt, float* wt2,
                     std::int64_t ldw) {
  const std::int64_t out = weight.dim(0), n = weight.dim(1), ld = read_stride(n);
  for (std::int64_t r0 = 0; r0 < out; r0 += kReadRows) {
    const std::int64_t t = std::min(kReadRows, out - r0);
    for (std::int64_t r = 0; r < t; ++r) {
      float* row = rows + r * ld;
      weight.read_f32(static_cast<std::size_t>((r0 + r) * n), static_cast<std::size_t>(n), row);
      if (!all_finite(row, n)) {
        invalid("weight row " + std::to_string(r0 + r) + " holds a NaN or an infinity; it cannot be quantized");
      }
    }
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t c = h.order[static_cast<std::size_t>(k)];
      float* dst = wt + k * ldw + r0;
      float* dst2 = wt2 + k * ldw + r0;
      const bool dead = h.dead[static_cast<std::size_t>(c)] != 0;
      for (std::int64_t r = 0; r < t; ++r) dst[r] = dst2[r] = dead ? 0.0f : rows[r * ld + c];
    }
  }
}

// Columns [k0, k0 + count) of the quantization order, codes [count, out] (row stride ld), into codes [out, n] at
// their original columns, by tiles of kCodeTile × kCodeTile through a dense copy: storing straight down a column
// would touch rows n bytes apart, which for n a power of two share a few cache sets.
void store_codes(const std::int8_t* block, std::int64_t ld, std::int64_t k0, std::int64_t count,
                 const std::vector<std::int64_t>& order, std::int64_t out, std::int64_t n, std::int8_t* codes) {
  std::int8_t tile[kCodeTile][kCodeTile];  // tile[r][k]
  for (std::int64_t r0 = 0; r0 < out; r0 += kCodeTile) {
    const std::int64_t tr = std::min(kCodeTile, out - r0);
    for (std::int64_t c0 = 0; c0 < count; c0 += kCodeTile) {
      const std::int64_t tc = std::min(kCodeTile, count - c0);
      for (std::int64_t k = 0; k < tc; ++k) {
        const std::int8_t* src = block + (c0 + k) * ld + r0;
        for (std::int64_t r = 0; r < tr; ++r) tile[r][k] = src[r];
      }
      const std::int64_t* columns = order.data() + k0 + c0;
      bool consecutive = true;  // as without act_order: one copy a row
      for (std::int64_t k = 1; k < tc; ++k) consecutive = consecutive && columns[k] == columns[0] + k;
      if (consecutive) {
        for (std::int64_t r = 0; r < tr; ++r) std::memcpy(codes + (r0 + r) * n + columns[0], tile[r], tc);
        continue;
      }
      for (std::int64_t r = 0; r < tr; ++r) {
        std::int8_t* dst = codes + (r0 + r) * n;
        for (std::int64_t k = 0; k < tc; ++k) dst[columns[k]] = tile[r][k];
      }
    }
  }
}

// Buffers of gptq_quantize, kept per thread and grown as needed: on a machine whose page faults are slow (a
// fresh 4 KB page measured at ~12 µs in the development VM), allocating the working weights afresh for every
// linear cost more than quantizing them. A worker keeps ~8·in·out bytes of its largest weight.
struct Workspace {
  LargeVector<float> original;   // Wᵀ [in, out], quantization order, dead columns zero
  LargeVector<float> working;    // W̃ᵀ: the same with the compensation added
  std::vector<float> deviation;  // D = W − deq(Q) of the current block's columns, [block, out]
  std::vector<std::int8_t> codes;  // the current block's codes, [block, out]
  std::vector<float> scale, zero;  // the current group's parameters per output row
  std::vector<float> column;       // a column of F within a sub-block
  std::vector<float> group_inverse, group_delta, group_rows;  // group_start_weights' scratch and result
  std::vector<float> static_scale, static_zero;  // static_groups: every group's parameters, [groups, out]
  std::vector<float> read_rows;  // weight rows as they are read

  template <typename Vector>
  static auto* sized(Vector& v, std::int64_t n) {
    if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
};

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

// The upper triangle of h mirrored into a full symmetric matrix (act_order permutes rows and columns alike),
// tile by tile through a dense transposed copy (reading down a column would touch rows n floats apart, which for
// n a power of two share their cache sets).
LargeVector<float> symmetric_from_upper(std::span<const float> h, std::int64_t n) {
  constexpr std::int64_t kTile = 64;
  LargeVector<float> s(h.begin(), h.end());
  float tile[kTile * kTile];  // tile[i][j] = h[j][i]
  for (std::int64_t i0 = 0; i0 < n; i0 += kTile) {
    const std::int64_t ti = std::min(kTile, n - i0);
    for (std::int64_t j0 = 0; j0 <= i0; j0 += kTile) {
      const std::int64_t tj = std::min(kTile, n - j0);
      for (std::int64_t j = 0; j < tj; ++j) {
        const float* src = h.data() + (j0 + j) * n + i0;
        for (std::int64_t i = 0; i < ti; ++i) tile[i * kTile + j] = src[i];
      }
      for (std::int64_t i = 0; i < ti; ++i) {
        float* dst = s.data() + (i0 + i) * n + j0;
        for (std::int64_t j = 0; j < std::min(tj, i0 + i - j0); ++j) dst[j] = tile[i * kTile + j];
      }
    }
  }
  return s;
}

}  // namespace

GptqHessian prepare_gptq_hessian(std::span<const float> hessian, std::int64_t columns, const GptqOptions& options) {
  check_options(options);
  const std::int64_t n = columns;
  if (n < 1 || hessian.size() != static_cast<std::size_t>(n * n)) {
    invalid("a Hessian of " + std::to_string(n) + " columns needs " + std::to_string(n) + "² values, got " +
            std::to_string(hessian.size()));
  }
  auto at = [n](std::int64_t i, std::int64_t j) { return static_cast<std::size_t>(i * n + j); };
  std::vector<double> diag(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    if (!all_finite(hessian.data() + at(i, i), n - i)) {
      std::int64_t j = i;
      while (std::isfinite(hessian[at(i, j)])) ++j;
      invalid("the Hessian holds a NaN or an infinity at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
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
  // The fixed and dampened diagonal, and H in quantization order (with act_order; the factorisation reads the
  // upper triangle above the diagonal, and the diagonal from `diagonal`).
  std::vector<float> diagonal(static_cast<std::size_t>(n));
  for (std::int64_t a = 0; a < n; ++a) {
    diagonal[static_cast<std::size_t>(a)] =
        static_cast<float>(diag[static_cast<std::size_t>(h.order[static_cast<std::size_t>(a)])] + h.lambda);
  }
  LargeVector<float> permuted;
  if (options.act_order) {
    const LargeVector<float> full = symmetric_from_upper(hessian, n);
    permuted.resize(full.size());
    for (std::int64_t a = 0; a < n; ++a) {
      const float* src = full.data() + at(h.order[static_cast<std::size_t>(a)], 0);
      float* dst = permuted.data() + at(a, 0);
      for (std::int64_t b = a + 1; b < n; ++b) dst[b] = src[h.order[static_cast<std::size_t>(b)]];
    }
  }
  try {
    h.factor = unit_lower_factor(options.act_order ? std::span<const float>(permuted) : hessian, n, diagonal);
  } catch (const Error& e) {
    invalid(e.detail() + (options.act_order ? " (columns in act_order)" : "") + ", after dampening λ = " +
            std::to_string(h.lambda) + "; quantize this weight without calibration data instead");
  }
  return h;
}

GptqResult gptq_quantize(const Tensor& weight, const GptqHessian& hessian, const GptqOptions& options) {
  check_weight(weight, options);
  const std::int64_t out = weight.dim(0), n = weight.dim(1);
  if (hessian.columns != n) {
    invalid("weight " + shape_to_string(weight.shape()) + " needs a Hessian of " + std::to_string(n) +
            " columns, got " + std::to_string(hessian.columns));
  }
  if (hessian.dampening != options.dampening || hessian.act_order != options.act_order) {
    invalid("the Hessian was prepared with other dampening or act_order options");
  }
  // Static groups are fixed before the loop, which then runs as for one group per row (gw = n: nothing to
  // compute at group starts, blocks not cut at them).
  const bool static_groups = options.static_groups && options.group_size > 0;
  const std::int64_t groups = options.group_size > 0 ? n / options.group_size : 1;
  const std::int64_t gw = static_groups ? n : n / groups;
  const std::int64_t bs = std::min(options.block_size, n);
  GptqResult result = zero_result(out, n, groups, options);
  if (out == 0) return result;

  // Rows of the working buffers `ld` floats apart: oneDNN's GEMMs slow down by ~20 % when their C rows are a
  // multiple of 2 KB apart (measured at out = 2048), so such widths get 16 floats of padding.
  const std::int64_t ld = out % 512 == 0 ? out + 16 : out;
  Workspace& ws = thread_workspace();
  float* original = Workspace::sized(ws.original, n * ld);
  float* w = Workspace::sized(ws.working, n * ld);
  float* d = Workspace::sized(ws.deviation, bs * ld);
  std::int8_t* block_codes = Workspace::sized(ws.codes, bs * ld);
  float* scale = Workspace::sized(ws.scale, out);
  float* zero = Workspace::sized(ws.zero, out);
  float* column = Workspace::sized(ws.column, kSubBlock);
  float *group_inverse = nullptr, *group_delta = nullptr, *group_rows = nullptr;
  if (groups > 1 && !static_groups) {
    group_inverse = Workspace::sized(ws.group_inverse, gw * gw);
    group_delta = Workspace::sized(ws.group_delta, gw * ld);
    group_rows = Workspace::sized(ws.group_rows, gw * ld);
  }
  load_transposed(weight, hessian, Workspace::sized(ws.read_rows, kReadRows * read_stride(n)), original, w, ld);
  std::int8_t* codes = result.codes.mutable_data<std::int8_t>();
  float* scales = result.scale.mutable_data<float>();
  float* zeros = options.symmetric ? nullptr : result.zero_point.mutable_data<float>();
  const CodeRange range = code_range(options);
  const float* f = hessian.factor.data();  // F, lower: row j holds column j's weights of the earlier columns
  float *static_scale = nullptr, *static_zero = nullptr;
  if (static_groups) {
    static_scale = Workspace::sized(ws.static_scale, groups * out);
    static_zero = Workspace::sized(ws.static_zero, groups * out);
    float* rows = Workspace::sized(ws.group_rows, options.group_size * ld);
    static_group_params(original, ld, hessian.order, options, out, rows, static_scale, static_zero, scales, zeros);
  }
  using kernels::row_major;

  std::int64_t b1 = 0;
  for (std::int64_t b0 = 0; b0 < n; b0 = b1) {
    // A group that starts inside a block ends in it (its parameters then see every earlier column's update).
    b1 = std::min(b0 + bs, n);
    const std::int64_t next_group = (b0 / gw + 1) * gw;
    if (next_group < b1) b1 = std::max(next_group, b1 / gw * gw);
    std::int64_t c1 = b0;
    for (std::int64_t c0 = b0; c0 < b1; c0 = c1) {
      c1 = std::min({c0 + kSubBlock, b1, (c0 / gw + 1) * gw});  // a group's first column starts a sub-block
      for (std::int64_t i = c0; i < c1; ++i) {
        if (!static_groups && i % gw == 0) {
          const float* rows = w + i * ld;  // the first group: no compensation yet
          if (i > 0) {
            group_start_weights(original, w, ld, f, n, i, gw, out, group_inverse, group_delta, group_rows);
            rows = group_rows;
          }
          group_params(rows, ld, gw, out, options, scale, zero);
          for (std::int64_t r = 0; r < out; ++r) {
            scales[r * groups + i / gw] = scale[r];
            if (zeros != nullptr) zeros[r * groups + i / gw] = zero[r];
          }
        }
        float* di = d + (i - b0) * ld;
        const std::int64_t g = static_groups ? hessian.order[static_cast<std::size_t>(i)] / options.group_size : 0;
        kernels::quantize_codes_elementwise(w + i * ld, static_groups ? static_scale + g * out : scale,
                                            static_groups ? static_zero + g * out : zero, out, options.float_dtype,
                                            range, block_codes + (i - b0) * ld, original + i * ld, di);
        // w̃_j += F_ji · D_i for the sub-block's later columns (F's column i, gathered).
        if (i + 1 < c1) {
          for (std::int64_t j = i + 1; j < c1; ++j) column[j - i - 1] = f[j * n + i];
          kernels::add_outer_product(w + (i + 1) * ld, c1 - i - 1, out, ld, column, di);
        }
      }
      // The block's later columns: W̃ᵀ[c1:b1] += F[c1:b1, c0:c1] · Dᵀ[c0:c1].
      if (c1 < b1) {
        kernels::matmul(row_major(f + c1 * n + c0, b1 - c1, c1 - c0, n),
                        row_major(d + (c0 - b0) * ld, c1 - c0, out, ld), w + c1 * ld, ld, /*accumulate=*/true);
      }
    }
    store_codes(block_codes, ld, b0, b1 - b0, hessian.order, out, n, codes);
    // The lazy batch: every later column, W̃ᵀ[b1:] += F[b1:, b0:b1] · Dᵀ[b0:b1].
    if (b1 < n) {
      kernels::matmul(row_major(f + b1 * n + b0, n - b1, b1 - b0, n), row_major(d, b1 - b0, out, ld), w + b1 * ld, ld,
                      /*accumulate=*/true);
    }
  }

  if (options.act_order) {
    result.order = hessian.order;
    if (options.group_size > 0 && !static_groups) {
      result.group_index.resize(static_cast<std::size_t>(n));
      for (std::int64_t k = 0; k < n; ++k) {
        result.group_index[static_cast<std::size_t>(hessian.order[static_cast<std::size_t>(k)])] =
            static_cast<std::int32_t>(k / options.group_size);
      }
    }
  }
  return result;
}

GptqResult gptq_quantize(const Tensor& weight, std::span<const float> hessian, const GptqOptions& options) {
  if (weight.rank() != 2) {
    invalid("weight to quantize must be 2-D, got " + shape_to_string(weight.shape()));
  }
  return gptq_quantize(weight, prepare_gptq_hessian(hessian, weight.dim(1), options), options);
}

GptqResult round_to_nearest(const Tensor& weight, const GptqOptions& options) {
  check_weight(weight, options);
  const std::int64_t out = weight.dim(0), n = weight.dim(1);
  const std::int64_t gw = options.group_size > 0 ? options.group_size : n, groups = n / gw;
  GptqResult result = zero_result(out, n, groups, options);
  if (out == 0 || n == 0) return result;
  // GPTQ's loop with nothing to compensate: the identity order, no dead column.
  GptqHessian identity;
  identity.columns = n;
  identity.order.resize(static_cast<std::size_t>(n));
  std::iota(identity.order.begin(), identity.order.end(), std::int64_t{0});
  identity.dead.assign(static_cast<std::size_t>(n), 0);
  const std::int64_t ld = out;
  Workspace& ws = thread_workspace();
  float* wt = Workspace::sized(ws.original, n * ld);
  load_transposed(weight, identity, Workspace::sized(ws.read_rows, kReadRows * read_stride(n)), wt, wt, ld);
  std::int8_t* block_codes = Workspace::sized(ws.codes, gw * ld);
  float* scale = Workspace::sized(ws.scale, out);
  float* zero = Workspace::sized(ws.zero, out);
  float* scales = result.scale.mutable_data<float>();
  float* zeros = options.symmetric ? nullptr : result.zero_point.mutable_data<float>();
  const CodeRange range = code_range(options);
  for (std::int64_t g = 0; g < groups; ++g) {
    group_params(wt + g * gw * ld, ld, gw, out, options, scale, zero);
    for (std::int64_t r = 0; r < out; ++r) {
      scales[r * groups + g] = scale[r];
      if (zeros != nullptr) zeros[r * groups + g] = zero[r];
    }
    for (std::int64_t a = 0; a < gw; ++a) {
      kernels::quantize_codes_elementwise(wt + (g * gw + a) * ld, scale, zero, out, options.float_dtype, range,
                                          block_codes + a * ld);
    }
    store_codes(block_codes, ld, g * gw, gw, identity.order, out, n, result.codes.mutable_data<std::int8_t>());
  }
  return result;
}

}  // namespace moeslim::quant
