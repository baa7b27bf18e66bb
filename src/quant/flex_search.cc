#include "quant/flex_search.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "core/large_buffer.h"
#include "core/log.h"
#include "core/profiler.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"
#include "quant/flex_checks.h"

namespace moeslim::quant {
namespace {

using flex::invalid;
using flex::require_exponents;
using flex::require_float_dtype;
using flex::require_matrix;
using flex::torch_pow;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Rows per block: a multiple of 64, so that the int8 GEMM runs whole row chunks without staging
// (kernels/row_blocks.h); each wave gives every worker a few blocks between two looks at the cutoff.
constexpr std::int64_t kBlockRows = 256;
constexpr int kWaveBlocksPerWorker = 4;

// Holds what does not depend on (α, β): the dtype-rounded X rows and stacked weights, their column maxima and
// the float product X·Wcᵀ with its rms. error() then costs the weights' quantization and, for each block of
// rows, the rows' quantization, one int8 GEMM and one pass, the blocks spread over the kernel threads (each
// block on one thread: no serial staging between parallel GEMMs). Blocks run in waves so that error() can
// stop when the rows so far already prove the error above `cutoff`.
class FlexErrorEvaluator {
 public:
  FlexErrorEvaluator(const Tensor& x, const std::vector<const Tensor*>& weights, DType dt, std::int64_t max_rows);

  double error(double alpha, double beta, double cutoff = std::numeric_limits<double>::infinity());

 private:
  // What one block of rows needs, one per worker thread.
  struct BlockScratch {
    std::vector<float> v;              // a scaled row
    std::vector<std::uint8_t> codes;   // the block's activation codes, u8 = s8 + 128
    LargeVector<std::int32_t> acc;     // their int8 product with the weight codes
    std::vector<float> intervals;      // the rows' intervals
  };
  // The squared error of rows [begin, begin + rows) into row_sums_; false if one has no valid interval.
  bool block_error(const kernels::PreparedInt8Weight& pw, std::int64_t begin, std::int64_t rows, BlockScratch& s);
  // The error that a sum of squared differences over all n·out elements gives: a monotone function of `sum`.
  float error_of_sum(double sum) const;

  DType dt_;
  std::int64_t n_ = 0, c_ = 0, out_ = 0;
  // The large buffers are huge-page mappings (core/large_buffer.h): hundreds of MB at 30B shapes, made per search.
  LargeVector<float> x_, w_;        // [n, c] and [out, c], rounded to the dtype
  std::vector<float> a_, wmax_;     // column maxima of X (all rows) and of Wc
  LargeVector<float> golden_;       // dt(X·Wcᵀ) [n, out]
  float golden_rms_ = 0.0f;         // dt(sqrt(dt(mean golden²)))
  std::vector<float> sigma_, wi_;   // σ and the weight rows' intervals at the current point
  LargeVector<std::int8_t> wq_;     // the weight codes at the current point
  std::vector<std::int32_t> acc_offset_;  // 128·Σ_k wq[i,k]: what the u8 activation codes add to a product
  std::vector<double> row_sums_;    // each row's squared error at the current point
  std::vector<BlockScratch> scratch_;
};

FlexErrorEvaluator::FlexErrorEvaluator(const Tensor& x, const std::vector<const Tensor*>& weights, DType dt,
                                       std::int64_t max_rows)
    : dt_(dt) {
  require_float_dtype(dt);
  require_matrix(x, -1, -1, "flex search activations", false);
  if (weights.empty()) invalid("flex search weights", "no weights");
  const std::int64_t rows_all = x.dim(0);
  c_ = x.dim(1);
  if (c_ > kernels::kMaxInt8GemmK) invalid("flex search activations", std::to_string(c_) + " channels are too many");
  if (max_rows < 0) invalid("max_rows", "must be ≥ 0");
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == nullptr) invalid("flex search weight " + std::to_string(i), "null tensor");
    require_matrix(*weights[i], -1, c_, "flex search weight " + std::to_string(i), false);
    out_ += weights[i]->dim(0);
  }
  n_ = (max_rows > 0 && max_rows < rows_all) ? max_rows : rows_all;

  // X: σ's maxima over every row; the error over the (evenly strided) selected rows. The set-up is spread over
  // the threads (serial, it showed in a profile of the search); maxima are exact in any order, and the first
  // non-finite row is the lowest one whichever thread finds it.
  const int threads = kernels::num_threads();
  const float* xp = x.data<float>();
  a_.assign(static_cast<std::size_t>(c_), 0.0f);
  std::int64_t bad_row = rows_all;
#pragma omp parallel num_threads(threads) if (rows_all * c_ >= (1 << 20))
  {
    std::vector<float> local(static_cast<std::size_t>(c_), 0.0f);
    std::int64_t local_bad = rows_all;
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < rows_all; ++t) {
      for (std::int64_t j = 0; j < c_; ++j) {
        const float v = xp[t * c_ + j];
        if (!std::isfinite(v)) local_bad = std::min(local_bad, t);
        local[j] = std::max(local[j], std::fabs(v));
      }
    }
#pragma omp critical
    {
      bad_row = std::min(bad_row, local_bad);
      for (std::int64_t j = 0; j < c_; ++j) a_[j] = std::max(a_[j], local[j]);
    }
  }
  if (bad_row < rows_all) invalid("flex search activations", "row " + std::to_string(bad_row) + " holds a NaN or Inf");
  x_.resize(static_cast<std::size_t>(n_ * c_));
#pragma omp parallel for schedule(static) num_threads(threads) if (n_ * c_ >= (1 << 20))
  for (std::int64_t i = 0; i < n_; ++i) {
    const std::int64_t t = n_ == rows_all ? i : i * rows_all / n_;
    for (std::int64_t j = 0; j < c_; ++j) x_[i * c_ + j] = round_to_float_dtype(xp[t * c_ + j], dt);
  }
  for (float& v : a_) v = round_to_float_dtype(v, dt);  // max of rounded values = rounded max (monotone)

  w_.reserve(static_cast<std::size_t>(out_ * c_));
  wmax_.assign(static_cast<std::size_t>(c_), 0.0f);
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const float* p = weights[i]->data<float>();
    for (std::size_t e = 0; e < weights[i]->numel(); ++e) {
      if (!std::isfinite(p[e])) invalid("flex search weight " + std::to_string(i), "holds a NaN or Inf");
      const float v = round_to_float_dtype(p[e], dt);
      w_.push_back(v);
      wmax_[e % c_] = std::max(wmax_[e % c_], std::fabs(v));
    }
  }

  // X·Wcᵀ once per search: a float32 GEMM on dtype values (exact products, f32 sums, as a bf16 matmul does).
  golden_.resize(static_cast<std::size_t>(n_ * out_));
  const kernels::PreparedWeight pw =
      kernels::PreparedWeight::from_f32(w_.data(), out_, c_, c_, kernels::GemmPrecision::kF32);
  {
    const ProfileScope scope(ProfileKind::kSearchGemm, 2.0 * static_cast<double>(n_ * c_ * out_));
    kernels::gemm(x_.data(), n_, c_, pw, golden_.data(), out_);
  }
  const auto golden_size = static_cast<std::int64_t>(golden_.size());
#pragma omp parallel for schedule(static) num_threads(threads) if (golden_size >= (1 << 20))
  for (std::int64_t e = 0; e < golden_size; ++e) golden_[e] = round_to_float_dtype(golden_[e], dt);
  double sum = 0.0;  // in element order, as before: the rms must not depend on the thread count
  for (const float g : golden_) sum += static_cast<double>(g) * g;
  const float mean = round_to_float_dtype(static_cast<float>(sum / static_cast<double>(golden_.size())), dt);
  golden_rms_ = round_to_float_dtype(std::sqrt(mean), dt);

  sigma_.resize(static_cast<std::size_t>(c_));
  wq_.resize(w_.size());
  wi_.resize(static_cast<std::size_t>(out_));
  acc_offset_.resize(static_cast<std::size_t>(out_));
  row_sums_.resize(static_cast<std::size_t>(n_));
}

// A row's Q8 interval of 0 or ∞ means msModelSlim's row would be NaN (its codes divide by the interval).
bool valid_interval(float interval) { return interval > 0.0f && interval < std::numeric_limits<float>::infinity(); }

// Q8 of the block's rows of X/σ, as quant_int8sym does on the dtype, their product with the weight codes, and
// each row's squared error against dt(X·Wcᵀ).
bool FlexErrorEvaluator::block_error(const kernels::PreparedInt8Weight& pw, std::int64_t begin, std::int64_t rows,
                                     BlockScratch& s) {
  s.v.resize(static_cast<std::size_t>(c_));
  s.codes.resize(static_cast<std::size_t>(rows * c_));
  s.acc.resize(static_cast<std::size_t>(rows * out_));
  s.intervals.resize(static_cast<std::size_t>(rows));
  float* intervals = s.intervals.data();
  for (std::int64_t r = 0; r < rows; ++r) {
    auto* codes = reinterpret_cast<std::int8_t*>(s.codes.data() + r * c_);
    intervals[r] = kernels::quantize_scaled_row_symmetric(x_.data() + (begin + r) * c_, sigma_.data(), true, c_, dt_,
                                                          s.v.data(), codes);
    if (!valid_interval(intervals[r])) return false;
  }
  // s8 codes as u8 = s8 + 128 (flipping the sign bit), the form the u8·s8 GEMM takes without staging;
  // acc_offset_ takes the 128·Σ_k W back off, exactly.
  for (std::uint8_t& q : s.codes) q ^= 0x80u;
  {
    const ProfileScope scope(ProfileKind::kSearchGemm, 2.0 * static_cast<double>(rows * c_ * out_),
                             Arithmetic::kInteger);
    kernels::gemm_u8s8_s32(s.codes.data(), rows, c_, pw, s.acc.data(), out_);
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    row_sums_[begin + r] =
        kernels::dequantized_row_square_error(s.acc.data() + r * out_, acc_offset_.data(), wi_.data(), intervals[r],
                                              golden_.data() + (begin + r) * out_, out_, dt_);
  }
  return true;
}

float FlexErrorEvaluator::error_of_sum(double sum) const {
  const auto rd = [this](float v) { return round_to_float_dtype(v, dt_); };
  const float mean = rd(static_cast<float>(sum / (static_cast<double>(n_) * static_cast<double>(out_))));
  const float rms = rd(std::sqrt(mean));
  return rd(rms / golden_rms_);  // the dtype's resolution is what msModelSlim compares (see the header)
}

double FlexErrorEvaluator::error(double alpha, double beta, double cutoff) {
  const auto rd = [this](float v) { return round_to_float_dtype(v, dt_); };
  // σ = dt(dt(a^α) · dt(w^−β)); the exponents as float32, as PyTorch passes them to its kernel.
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  for (std::int64_t j = 0; j < c_; ++j) {
    const float s = rd(rd(torch_pow(a_[j], fa)) * rd(torch_pow(wmax_[j], -fb)));
    if (!(s > 0.0f && s < std::numeric_limits<float>::infinity())) return kNaN;  // X/σ or W⊙σ would hold NaN
    sigma_[j] = s;
  }
  bool weights_ok = true;
#pragma omp parallel num_threads(kernels::num_threads()) if (out_ * c_ >= (1 << 20)) reduction(&& : weights_ok)
  {
    std::vector<float> v(static_cast<std::size_t>(c_));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < out_; ++i) {
      wi_[i] = kernels::quantize_scaled_row_symmetric(w_.data() + i * c_, sigma_.data(), false, c_, dt_, v.data(),
                                                      wq_.data() + i * c_);
      weights_ok = weights_ok && valid_interval(wi_[i]);
    }
  }
  if (!weights_ok) return kNaN;
  const kernels::PreparedInt8Weight pw = kernels::PreparedInt8Weight::from_s8(wq_.data(), out_, c_, c_);
  for (std::int64_t i = 0; i < out_; ++i) acc_offset_[i] = 128 * pw.column_sums()[static_cast<std::size_t>(i)];

  // Q8(X)·Q8(W)ᵀ = (codes·codesᵀ)[t,i] · interval_t · interval_i: exact int32 products, scaled per element,
  // rounded to the dtype like a bf16 matmul output, compared with dt(X·Wcᵀ). The rows' squared errors are
  // summed in row order after each wave, so the sum after any wave is at most the final one (adding a
  // non-negative double never lowers a sum under round-to-nearest) and does not depend on the thread count;
  // error_of_sum is monotone, so once the partial sum's error exceeds the cutoff the final error does too,
  // and the rest of X is never quantized or multiplied.
  const std::int64_t blocks = (n_ + kBlockRows - 1) / kBlockRows;
  const int workers = kernels::task_worker_count(true);
  const std::int64_t wave = std::int64_t{kWaveBlocksPerWorker} * workers;
  scratch_.resize(static_cast<std::size_t>(workers));
  double sum = 0.0;
  for (std::int64_t b0 = 0; b0 < blocks; b0 += wave) {
    const std::int64_t count = std::min(wave, blocks - b0);
    std::atomic<bool> rows_ok{true};
    kernels::run_tasks(count, true, [&](std::int64_t task, int worker) {
      const std::int64_t begin = (b0 + task) * kBlockRows;
      if (!block_error(pw, begin, std::min(kBlockRows, n_ - begin), scratch_[static_cast<std::size_t>(worker)])) {
        rows_ok.store(false, std::memory_order_relaxed);
      }
    });
    if (!rows_ok.load()) return kNaN;
    const std::int64_t end = std::min(n_, (b0 + count) * kBlockRows);
    for (std::int64_t t = b0 * kBlockRows; t < end; ++t) sum += row_sums_[t];
    if (end < n_) {
      const float bound = error_of_sum(sum);
      if (bound > cutoff) {
        log_debug("flex search: alpha {:.2f} beta {:.2f}: error above {:g} after {} of {} rows, stopped", alpha, beta,
                  cutoff, end, n_);
        return bound;
      }
    }
  }
  const float err = error_of_sum(sum);
  log_debug("flex search: alpha {:.2f} beta {:.2f}: error {:g} over all {} rows ({} outputs)", alpha, beta, err, n_,
            out_);
  return err;
}

}  // namespace

double flex_grid_value(int i) {
  if (i < 0 || i >= kFlexGridPoints) invalid("flex grid index", std::to_string(i) + " is outside [0, 21)");
  // np.round(np.arange(0, 1.05, 0.05), 2) = rint(i·0.05·100)/100 = (5i)/100, a correctly rounded quotient.
  return static_cast<double>(5 * i) / 100.0;
}

double flex_error(const Tensor& x, const std::vector<const Tensor*>& weights, double alpha, double beta,
                  DType float_dtype) {
  require_exponents(alpha, beta);
  FlexErrorEvaluator evaluator(x, weights, float_dtype, 0);
  return evaluator.error(alpha, beta);
}

FlexSearchResult flex_grid_search(const std::function<double(double alpha, double beta)>& error) {
  FlexSearchResult r;
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < kFlexGridPoints; ++i) {
    const double alpha = flex_grid_value(i);
    const double err = error(alpha, 1.0 - alpha);  // 1.0 − α in double, as Python computes it
    if (err <= best) {                             // "≤": the last of tied values wins
      best = err;
      r.alpha = alpha;
    }
  }
  // Phase 2 starts from phase 1's best error but from β = 0.0, not from 1 − α: if no β reaches that error again,
  // β stays 0.0 (msModelSlim's quirk, kept).
  r.beta = 0.0;
  for (int j = 0; j < kFlexGridPoints; ++j) {
    const double beta = flex_grid_value(j);
    const double err = error(r.alpha, beta);
    if (err <= best) {
      best = err;
      r.beta = beta;
    }
  }
  r.error = best;
  return r;
}

FlexSearchResult flex_grid_search_pruned(
    const std::function<double(double alpha, double beta, double cutoff)>& error) {
  // The middle of the grid first, then outwards: 10, 9, 11, 8, 12, ...
  std::array<int, kFlexGridPoints> order{};
  for (int k = 0; k < kFlexGridPoints; ++k) {
    const int step = (k + 1) / 2;
    order[k] = kFlexGridPoints / 2 + (k % 2 == 1 ? -step : step);
  }
  // Each phase evaluates its points in that order with the best exact error so far as the cutoff, then replays
  // flex_grid_search's rule over the results: a point whose value exceeds an error seen is never its pick.
  const auto replay = [](const std::array<double, kFlexGridPoints>& errors, const std::function<double(int)>& point,
                         double& best, double& picked) {
    for (int i = 0; i < kFlexGridPoints; ++i) {
      if (errors[i] <= best) {  // "≤": the last of tied values wins, as in flex_grid_search
        best = errors[i];
        picked = point(i);
      }
    }
  };
  std::array<double, kFlexGridPoints> phase1{};
  double cutoff = std::numeric_limits<double>::infinity();
  FlexSearchResult r;
  // An error at most the cutoff it was computed under is exact (a stopped evaluation returns a bound above it).
  const auto keep = [&r](double alpha, double beta, double err, double under) {
    if (!std::isnan(err) && err <= under) r.exact_points.push_back({alpha, beta, err});
  };
  for (const int i : order) {
    const double alpha = flex_grid_value(i);
    phase1[i] = error(alpha, 1.0 - alpha, cutoff);  // 1.0 − α in double, as Python computes it
    keep(alpha, 1.0 - alpha, phase1[i], cutoff);
    cutoff = std::min(cutoff, std::isnan(phase1[i]) ? cutoff : phase1[i]);
  }
  double best = std::numeric_limits<double>::infinity();
  int alpha_index = -1;
  replay(phase1, [&](int i) { alpha_index = i; return flex_grid_value(i); }, best, r.alpha);

  std::array<double, kFlexGridPoints> phase2{};
  phase2.fill(std::numeric_limits<double>::quiet_NaN());
  cutoff = best;
  for (const int j : order) {
    const double beta = flex_grid_value(j);
    if (alpha_index >= 0 && static_cast<float>(beta) == static_cast<float>(1.0 - r.alpha)) {
      phase2[j] = phase1[alpha_index];  // the same float32 exponents: phase 1's exact error
    } else {
      phase2[j] = error(r.alpha, beta, cutoff);
      keep(r.alpha, beta, phase2[j], cutoff);
    }
    cutoff = std::min(cutoff, std::isnan(phase2[j]) ? cutoff : phase2[j]);
  }
  r.beta = 0.0;  // the β fallback quirk, as flex_grid_search
  replay(phase2, [](int j) { return flex_grid_value(j); }, best, r.beta);
  r.error = best;
  return r;
}

FlexSearchResult search_flex_alpha_beta(const Tensor& x, const std::vector<const Tensor*>& weights,
                                        DType float_dtype, const FlexSearchOptions& options) {
  FlexErrorEvaluator evaluator(x, weights, float_dtype, options.max_rows);
  return flex_grid_search_pruned(
      [&](double alpha, double beta, double cutoff) { return evaluator.error(alpha, beta, cutoff); });
}

}  // namespace moeslim::quant
