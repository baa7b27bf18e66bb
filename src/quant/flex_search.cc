#include "quant/flex_search.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/half.h"
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

// Holds what does not depend on (α, β): the dtype-rounded X rows and stacked weights, their column maxima and
// the float product X·Wcᵀ with its rms. error() then costs two quantizations, one int8 GEMM and one pass, done
// in blocks of rows so that it can stop when the rows so far already prove the error above `cutoff`.
class FlexErrorEvaluator {
 public:
  FlexErrorEvaluator(const Tensor& x, const std::vector<const Tensor*>& weights, DType dt, std::int64_t max_rows);

  double error(double alpha, double beta, double cutoff = std::numeric_limits<double>::infinity());

 private:
  bool quantize_rows(const float* src, std::int64_t rows, bool divide, std::int8_t* codes, float* intervals) const;
  // The error that a sum of squared differences over all n·out elements gives: a monotone function of `sum`.
  float error_of_sum(double sum) const;

  DType dt_;
  std::int64_t n_ = 0, c_ = 0, out_ = 0;
  std::vector<float> x_, w_;        // [n, c] and [out, c], rounded to the dtype
  std::vector<float> a_, wmax_;     // column maxima of X (all rows) and of Wc
  std::vector<float> golden_;       // dt(X·Wcᵀ) [n, out]
  float golden_rms_ = 0.0f;         // dt(sqrt(dt(mean golden²)))
  std::vector<float> sigma_, xi_, wi_;
  std::vector<std::int8_t> xq_, wq_;
  std::vector<std::int32_t> acc_;
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

  // X: σ's maxima over every row; the error over the (evenly strided) selected rows.
  const float* xp = x.data<float>();
  a_.assign(static_cast<std::size_t>(c_), 0.0f);
  for (std::int64_t t = 0; t < rows_all; ++t) {
    for (std::int64_t j = 0; j < c_; ++j) {
      const float v = xp[t * c_ + j];
      if (!std::isfinite(v)) invalid("flex search activations", "row " + std::to_string(t) + " holds a NaN or Inf");
      a_[j] = std::max(a_[j], std::fabs(v));
    }
  }
  x_.resize(static_cast<std::size_t>(n_ * c_));
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
  kernels::gemm(x_.data(), n_, c_, pw, golden_.data(), out_);
  double sum = 0.0;
  for (float& g : golden_) {
    g = round_to_float_dtype(g, dt);
    sum += static_cast<double>(g) * g;
  }
  const float mean = round_to_float_dtype(static_cast<float>(sum / static_cast<double>(golden_.size())), dt);
  golden_rms_ = round_to_float_dtype(std::sqrt(mean), dt);

  sigma_.resize(static_cast<std::size_t>(c_));
  xq_.resize(x_.size());
  wq_.resize(w_.size());
  xi_.resize(static_cast<std::size_t>(n_));
  wi_.resize(static_cast<std::size_t>(out_));
}

// Q8 of every row of src/σ (divide, activations) or src⊙σ (weights), as quant_int8sym does on the dtype;
// false when a row's interval is 0 or ∞ (msModelSlim's row would be NaN).
bool FlexErrorEvaluator::quantize_rows(const float* src, std::int64_t rows, bool divide, std::int8_t* codes,
                                       float* intervals) const {
  const std::int64_t c = c_;
  bool ok = true;
#pragma omp parallel num_threads(kernels::num_threads()) if (rows * c >= (1 << 20)) reduction(&& : ok)
  {
    std::vector<float> v(static_cast<std::size_t>(c));
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = src + r * c;
      std::int8_t* q = codes + r * c;
      const float interval = kernels::quantize_scaled_row_symmetric(row, sigma_.data(), divide, c, dt_, v.data(), q);
      intervals[r] = interval;
      ok = ok && interval > 0.0f && interval < std::numeric_limits<float>::infinity();
    }
  }
  return ok;
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
  if (!quantize_rows(w_.data(), out_, false, wq_.data(), wi_.data())) return kNaN;

  // Q8(X)·Q8(W)ᵀ = (codes·codesᵀ)[t,i] · interval_t · interval_i: exact int32 products, scaled per element,
  // rounded to the dtype like a bf16 matmul output, compared with dt(X·Wcᵀ). Row by row the squared errors are
  // summed in row order, so the sum after any block is at most the final one (adding a non-negative double
  // never lowers a sum under round-to-nearest), and error_of_sum is monotone: once the partial sum's error
  // exceeds the cutoff the final error does too, and the rest of X is never quantized or multiplied.
  const kernels::PreparedInt8Weight pw = kernels::PreparedInt8Weight::from_s8(wq_.data(), out_, c_, c_);
  const std::int64_t block = std::min(n_, std::max<std::int64_t>((std::int64_t{1} << 21) / out_, 16));  // ≤ 8 MB
  acc_.resize(static_cast<std::size_t>(block * out_));
  std::vector<double> row_sums(static_cast<std::size_t>(block));
  double sum = 0.0;
  for (std::int64_t t0 = 0; t0 < n_; t0 += block) {
    const std::int64_t rows = std::min(block, n_ - t0);
    std::int8_t* xq = xq_.data() + t0 * c_;
    if (!quantize_rows(x_.data() + t0 * c_, rows, true, xq, xi_.data() + t0)) return kNaN;
    kernels::gemm_s8s8_s32(xq, rows, c_, pw, acc_.data(), out_);
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (rows * out_ >= (1 << 20))
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int32_t* acc = acc_.data() + r * out_;
      const float* g = golden_.data() + (t0 + r) * out_;
      row_sums[r] = kernels::dequantized_row_square_error(acc, wi_.data(), xi_[t0 + r], g, out_, dt_);
    }
    for (std::int64_t r = 0; r < rows; ++r) sum += row_sums[r];
    if (t0 + rows < n_) {
      const float bound = error_of_sum(sum);
      if (bound > cutoff) return bound;
    }
  }
  return error_of_sum(sum);
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
  for (const int i : order) {
    const double alpha = flex_grid_value(i);
    phase1[i] = error(alpha, 1.0 - alpha, cutoff);  // 1.0 − α in double, as Python computes it
    cutoff = std::min(cutoff, std::isnan(phase1[i]) ? cutoff : phase1[i]);
  }
  FlexSearchResult r;
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
