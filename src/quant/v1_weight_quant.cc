// The per-row loops are kernels (kernels/quant_rows.h: the codes of a row, and the sums of one ssz pass), with
// a portable and an AVX-512 path that give the same bits; the iteration around them is here.
#include "quant/v1_weight_quant.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"

namespace moeslim::quant {
namespace {

// msModelSlim's SCALE_SEARCH_CONVERGE_THRESHOLD, the floor of the relative test's denominator, and
// SCALE_SEARCH_MIN_SCALE (the clamp of Σ q² before the least-squares division).
constexpr float kConvergeThreshold = 1e-10f;
constexpr float kRelativeFloor = 1e-4f;
constexpr float kMinScaleDenominator = 1e-30f;

// Rows below this many elements run on one thread: the OpenMP fork costs more than it saves.
constexpr std::int64_t kMinmaxParallelElements = std::int64_t{1} << 20;
constexpr std::int64_t kSszParallelElements = std::int64_t{1} << 15;  // ssz does ~10–50 passes per row

using kernels::CodeRange;

CodeRange code_range(WeightBits bits) {
  return bits == WeightBits::kInt4 ? CodeRange{-8.0f, 7.0f} : CodeRange{-128.0f, 127.0f};
}

// s' = dt(dt(Σ W·q) / max(dt(Σ q²), dt(1e-30))).
float least_squares_scale(const kernels::CodeErrorSums& p, DType dt) {
  const float den = std::max(round_to_float_dtype(p.qq, dt), round_to_float_dtype(kMinScaleDenominator, dt));
  return round_to_float_dtype(round_to_float_dtype(p.wq, dt) / den, dt);
}

// What one row's ssz iteration leaves behind, for the shared stop decided after all rows ran.
struct RowTrace {
  float* best_scale;          // [steps + 1]: the row's best scale after iteration t (t = 0: the minmax scale)
  std::uint8_t* improving;    // [steps]: whether iteration t + 1 still improved this row (blocks the stop)
  float* seen;                // scratch [steps + 1]: the scales tried so far
};

// Iterates one row as if no other row existed. Once a candidate scale repeats an earlier one (the codes, and so
// every later candidate and MSE, repeat) or degenerates, the row can neither improve nor block the stop again,
// and the remaining iterations are filled in without work.
void ssz_row(const float* w, std::int64_t n, float s0, CodeRange range, DType dt, int steps,
             const RowTrace& trace) {
  const float count = static_cast<float>(n);
  kernels::CodeErrorSums sums = kernels::code_error_sums(w, n, s0, dt, range);
  float best = sums.squared_error / count;
  float best_s = s0;
  trace.best_scale[0] = s0;
  int n_seen = 0;
  trace.seen[n_seen++] = s0;
  bool settled = false;
  for (int t = 1; t <= steps; ++t) {
    trace.improving[t - 1] = 0;
    if (!settled) {
      const float s = least_squares_scale(sums, dt);
      settled = !(s > 0.0f && std::isfinite(s)) || std::find(trace.seen, trace.seen + n_seen, s) != trace.seen + n_seen;
      if (!settled) {
        trace.seen[n_seen++] = s;
        sums = kernels::code_error_sums(w, n, s, dt, range);
        const float cur = sums.squared_error / count;
        const float d = best - cur;
        const bool relatively_converged = d / std::max(best, kRelativeFloor) < kConvergeThreshold;
        const bool absolutely_converged = std::fabs(d) < kConvergeThreshold;
        trace.improving[t - 1] = !relatively_converged && !absolutely_converged;
        if (cur < best) {
          best = cur;
          best_s = s;
        }
      }
    }
    trace.best_scale[t] = best_s;
  }
}

// The minmax scale max(dt(max|W| / qmax), dt(eps32)), or NaN when the row holds a NaN or an infinity.
// (msModelSlim's max(−min(min,0), max(max,0)) of the row is max|W|.)
float minmax_scale(const float* w, std::int64_t n, CodeRange range, DType float_dtype) {
  float amax = 0.0f;
  for (std::int64_t k = 0; k < n; ++k) {
    if (!std::isfinite(w[k])) return NAN;
    amax = std::max(amax, std::fabs(w[k]));
  }
  return std::max(round_to_float_dtype(amax / range.hi, float_dtype),
                  round_to_float_dtype(kScaleEpsilon, float_dtype));
}

void check_weight(const Tensor& weight, const V1WeightOptions& options) {
  if (weight.rank() != 2 || !is_float_dtype(weight.dtype())) {
    throw Error(ErrorCode::kInvalidArgument,
                "weight to quantize must be a 2-D float tensor, got " + std::string(dtype_name(weight.dtype())) +
                    " " + shape_to_string(weight.shape()));
  }
  if (!is_float_dtype(options.float_dtype)) {
    throw Error(ErrorCode::kInvalidArgument,
                "model float dtype must be BF16, F16 or F32, got " + std::string(dtype_name(options.float_dtype)));
  }
}

[[noreturn]] void throw_bad_row(std::int64_t row) {
  throw Error(ErrorCode::kInvalidArgument,
              "weight row " + std::to_string(row) + " holds a NaN or an infinity; it cannot be quantized");
}

// Writes the codes of every row for the given scales (the minmax scales, or ssz's final ones).
void write_codes(const Tensor& weight, const float* scales, CodeRange range, DType float_dtype, std::int8_t* codes) {
  const std::int64_t out = weight.dim(0), in = weight.dim(1);
#pragma omp parallel num_threads(kernels::num_threads()) if (out * in >= kMinmaxParallelElements)
  {
    std::vector<float> row(static_cast<std::size_t>(in));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < out; ++n) {
      weight.read_f32(static_cast<std::size_t>(n * in), static_cast<std::size_t>(in), row.data());
      kernels::quantize_row_codes(row.data(), in, scales[n], float_dtype, range, codes + n * in);
    }
  }
}

}  // namespace

ChannelQuantizedWeight quantize_weight_minmax_v1(const Tensor& weight, const V1WeightOptions& options) {
  check_weight(weight, options);
  const std::int64_t out = weight.dim(0), in = weight.dim(1);
  const CodeRange range = code_range(options.bits);
  ChannelQuantizedWeight q{Tensor::zeros(DType::kI8, {out, in}), Tensor::zeros(DType::kF32, {out})};
  std::int8_t* codes = q.codes.mutable_data<std::int8_t>();
  float* scales = q.scale.mutable_data<float>();
  std::int64_t bad_row = out;

#pragma omp parallel num_threads(kernels::num_threads()) if (out * in >= kMinmaxParallelElements)
  {
    std::vector<float> row(static_cast<std::size_t>(in));
#pragma omp for schedule(static) reduction(min : bad_row)
    for (std::int64_t n = 0; n < out; ++n) {
      weight.read_f32(static_cast<std::size_t>(n * in), static_cast<std::size_t>(in), row.data());
      const float s = minmax_scale(row.data(), in, range, options.float_dtype);
      scales[n] = s;
      if (std::isnan(s)) {
        bad_row = std::min(bad_row, n);
        continue;
      }
      kernels::quantize_row_codes(row.data(), in, s, options.float_dtype, range, codes + n * in);
    }
  }
  if (bad_row < out) throw_bad_row(bad_row);
  return q;
}

ChannelQuantizedWeight quantize_weight_ssz(const Tensor& weight, const V1WeightOptions& options) {
  check_weight(weight, options);
  if (options.ssz_steps < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "ssz step count must be at least 1, got " + std::to_string(options.ssz_steps), {}, "ext.step");
  }
  const std::int64_t out = weight.dim(0), in = weight.dim(1);
  const int steps = options.ssz_steps;
  const CodeRange range = code_range(options.bits);
  const std::size_t hist = static_cast<std::size_t>(steps) + 1;
  std::vector<float> best_scale(static_cast<std::size_t>(out) * hist);
  std::vector<std::uint8_t> improving(static_cast<std::size_t>(out) * static_cast<std::size_t>(steps));
  std::int64_t bad_row = out;

  // Phase 1: every row's own iteration (its trace is independent of the thread that ran it).
#pragma omp parallel num_threads(kernels::num_threads()) if (out * in >= kSszParallelElements)
  {
    std::vector<float> row(static_cast<std::size_t>(in));
    std::vector<float> seen(hist);
#pragma omp for schedule(dynamic, 4) reduction(min : bad_row)
    for (std::int64_t n = 0; n < out; ++n) {
      weight.read_f32(static_cast<std::size_t>(n * in), static_cast<std::size_t>(in), row.data());
      const float s0 = minmax_scale(row.data(), in, range, options.float_dtype);
      if (std::isnan(s0)) {
        bad_row = std::min(bad_row, n);
        continue;
      }
      const RowTrace trace{best_scale.data() + static_cast<std::size_t>(n) * hist,
                           improving.data() + static_cast<std::size_t>(n) * static_cast<std::size_t>(steps),
                           seen.data()};
      ssz_row(row.data(), in, s0, range, options.float_dtype, steps, trace);
    }
  }
  if (bad_row < out) throw_bad_row(bad_row);

  // Phase 2: the shared stop. The loop ends, before adopting anything, at the first iteration no row still
  // improves; the rows keep their best scale from the iteration before (all `steps` when it never ends early).
  int last = steps;
  for (int t = 1; t <= steps; ++t) {
    bool any = false;
    for (std::int64_t n = 0; n < out && !any; ++n) any = improving[static_cast<std::size_t>(n) * steps + (t - 1)] != 0;
    if (!any) {
      last = t - 1;
      break;
    }
  }
  ChannelQuantizedWeight q{Tensor::zeros(DType::kI8, {out, in}), Tensor::zeros(DType::kF32, {out})};
  float* scales = q.scale.mutable_data<float>();
  for (std::int64_t n = 0; n < out; ++n) scales[n] = best_scale[static_cast<std::size_t>(n) * hist + last];

  // Phase 3: the final codes quant(W, s_best).
  write_codes(weight, scales, range, options.float_dtype, q.codes.mutable_data<std::int8_t>());
  return q;
}

bool v1_weight_quant_produces(QuantScheme scheme) {
  return scheme == QuantScheme::kW8A8Dynamic || scheme == QuantScheme::kW4A8Dynamic;
}

QuantizedLinear quantize_linear_weight_v1(const model::ModuleId& module, QuantScheme scheme, const Tensor& weight,
                                          V1WeightMethod method, const V1WeightOptions& options) {
  const std::string name = model::hf_module_name(module);
  V1WeightOptions opts = options;
  switch (scheme) {
    case QuantScheme::kW8A8Dynamic: opts.bits = WeightBits::kInt8; break;
    case QuantScheme::kW4A8Dynamic: opts.bits = WeightBits::kInt4; break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("v1 weight quantization does not produce ") + quant_scheme_name(scheme), {}, name);
  }
  ChannelQuantizedWeight q;
  try {
    q = method == V1WeightMethod::kSsz ? quantize_weight_ssz(weight, opts) : quantize_weight_minmax_v1(weight, opts);
  } catch (const Error& e) {
    throw Error(e.code(), e.detail(), {}, name + ".weight");
  }
  QuantizedLinear linear;
  linear.module = module;
  linear.scheme = scheme;
  linear.weight = std::move(q.codes);
  linear.weight_scale = std::move(q.scale);
  return linear;
}

}  // namespace moeslim::quant
