#include "quant/flex_smoothing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"
#include "kernels/quant_rows.h"
#include "kernels/threading.h"

namespace moeslim::quant {
namespace {

constexpr float kScaleMin = 1e-5f;  // FlexSmoothScaleCalculator's clamp, applied in float32 before the dtype cast
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- argument checks: kInvalidArgument naming the tensor's role (also as the error's field) ----

[[noreturn]] void invalid(const std::string& role, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, role + ": " + what, {}, role);
}

// rows/cols < 0: any (but > 0). writable: the tensor is edited in place, so it must own its bytes.
void require_matrix(const Tensor& t, std::int64_t rows, std::int64_t cols, const std::string& role, bool writable) {
  const bool shape_ok = t.rank() == 2 && t.dim(0) > 0 && t.dim(1) > 0 && (rows < 0 || t.dim(0) == rows) &&
                        (cols < 0 || t.dim(1) == cols);
  if (t.dtype() != DType::kF32 || !shape_ok || (writable && t.is_view())) {
    invalid(role, std::string("expected ") + (writable ? "an owned " : "an ") + "F32 [" +
                      (rows < 0 ? "rows" : std::to_string(rows)) + ", " + (cols < 0 ? "cols" : std::to_string(cols)) +
                      "] tensor, got " + std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()));
  }
}

void require_vector(const Tensor& t, std::int64_t n, const std::string& role) {
  if (t.dtype() != DType::kF32 || t.rank() != 1 || t.dim(0) != n || t.is_view()) {
    invalid(role, "expected an owned F32 [" + std::to_string(n) + "] tensor, got " +
                      std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()));
  }
}

void require_size(const std::vector<float>& v, std::int64_t n, const std::string& role) {
  if (static_cast<std::int64_t>(v.size()) != n) {
    invalid(role, std::to_string(v.size()) + " channels, expected " + std::to_string(n));
  }
}

// msModelSlim validates α and β as normalized values.
void require_exponents(double alpha, double beta) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) invalid("alpha", "must lie in [0, 1], got " + std::to_string(alpha));
  if (!(beta >= 0.0 && beta <= 1.0)) invalid("beta", "must lie in [0, 1], got " + std::to_string(beta));
}

void require_float_dtype(DType dt) {
  if (!is_float_dtype(dt)) invalid("float_dtype", "not a float dtype: " + std::string(dtype_name(dt)));
}

// The same tensor listed twice would be scaled twice.
void require_distinct(const std::vector<Tensor*>& ts, const std::string& role) {
  std::set<const Tensor*> seen;
  for (const Tensor* t : ts) {
    if (t == nullptr) invalid(role, "null tensor");
    if (!seen.insert(t).second) invalid(role, "the same tensor is listed twice");
  }
}

// ---- dtype arithmetic ----

// x^p as PyTorch's pow(tensor, scalar) computes it: the exponent reaches the kernel as a float32, and the
// exponents 0, 1, ±0.5, −1, 2, 3, −2 take exact shortcuts (fill, copy, sqrt, 1/sqrt, reciprocal, products)
// instead of std::pow. The same shortcut for 0.5 is m4_smoothing.cc's `power`.
float torch_pow(float x, float p) {
  if (p == 0.0f) return 1.0f;  // also 0^0 and 0^−0, as torch's fill
  if (p == 1.0f) return x;
  if (p == 0.5f) return std::sqrt(x);
  if (p == -0.5f) return 1.0f / std::sqrt(x);
  if (p == -1.0f) return 1.0f / x;
  if (p == 2.0f) return x * x;
  if (p == 3.0f) return x * x * x;
  if (p == -2.0f) return 1.0f / (x * x);
  return std::pow(x, p);
}

// max over rows of |W[:, j]|, accumulated into `out`; W of any float dtype, a mapped view included (read row by
// row, so a bf16 expert is never copied whole).
void column_abs_max(const Tensor& w, std::vector<float>& out) {
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    w.read_f32(static_cast<std::size_t>(r * cols), static_cast<std::size_t>(cols), row.data());
    for (std::int64_t c = 0; c < cols; ++c) out[c] = std::max(out[c], std::fabs(row[c]));
  }
}

// msModelSlim's `1.0 / scales` on the dtype tensor: the producer side is multiplied by this, never divided by s.
std::vector<float> reciprocals(const std::vector<float>& s, DType dt) {
  std::vector<float> r(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) r[i] = round_to_float_dtype(1.0f / s[i], dt);
  return r;
}

// ---- the search's error function ----

// Holds what does not depend on (α, β): the dtype-rounded X rows and stacked weights, their column maxima and
// the float product X·Wcᵀ with its rms. error() then costs two quantizations, one int8 GEMM and one pass.
class FlexErrorEvaluator {
 public:
  FlexErrorEvaluator(const Tensor& x, const std::vector<const Tensor*>& weights, DType dt, std::int64_t max_rows);

  double error(double alpha, double beta);

 private:
  bool quantize_rows(const std::vector<float>& src, std::int64_t rows, bool divide, std::vector<std::int8_t>& codes,
                     std::vector<float>& intervals) const;

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
bool FlexErrorEvaluator::quantize_rows(const std::vector<float>& src, std::int64_t rows, bool divide,
                                       std::vector<std::int8_t>& codes, std::vector<float>& intervals) const {
  const std::int64_t c = c_;
  bool ok = true;
#pragma omp parallel num_threads(kernels::num_threads()) if (rows * c >= (1 << 20)) reduction(&& : ok)
  {
    std::vector<float> v(static_cast<std::size_t>(c));
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = src.data() + r * c;
      std::int8_t* q = codes.data() + r * c;
      const float interval = kernels::quantize_scaled_row_symmetric(row, sigma_.data(), divide, c, dt_, v.data(), q);
      intervals[r] = interval;
      ok = ok && interval > 0.0f && interval < std::numeric_limits<float>::infinity();
    }
  }
  return ok;
}

double FlexErrorEvaluator::error(double alpha, double beta) {
  const auto rd = [this](float v) { return round_to_float_dtype(v, dt_); };
  // σ = dt(dt(a^α) · dt(w^−β)); the exponents as float32, as PyTorch passes them to its kernel.
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  for (std::int64_t j = 0; j < c_; ++j) {
    const float s = rd(rd(torch_pow(a_[j], fa)) * rd(torch_pow(wmax_[j], -fb)));
    if (!(s > 0.0f && s < std::numeric_limits<float>::infinity())) return kNaN;  // X/σ or W⊙σ would hold NaN
    sigma_[j] = s;
  }
  if (!quantize_rows(x_, n_, true, xq_, xi_) || !quantize_rows(w_, out_, false, wq_, wi_)) return kNaN;

  // Q8(X)·Q8(W)ᵀ = (codes·codesᵀ)[t,i] · interval_t · interval_i: exact int32 products, scaled per element,
  // rounded to the dtype like a bf16 matmul output, compared with dt(X·Wcᵀ).
  const kernels::PreparedInt8Weight pw = kernels::PreparedInt8Weight::from_s8(wq_.data(), out_, c_, c_);
  const std::int64_t block = std::min(n_, std::max<std::int64_t>((std::int64_t{1} << 21) / out_, 16));  // ≤ 8 MB
  acc_.resize(static_cast<std::size_t>(block * out_));
  std::vector<double> row_sums(static_cast<std::size_t>(n_));
  for (std::int64_t t0 = 0; t0 < n_; t0 += block) {
    const std::int64_t rows = std::min(block, n_ - t0);
    kernels::gemm_s8s8_s32(xq_.data() + t0 * c_, rows, c_, pw, acc_.data(), out_);
#pragma omp parallel for schedule(static) num_threads(kernels::num_threads()) if (rows * out_ >= (1 << 20))
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int32_t* acc = acc_.data() + r * out_;
      const float* g = golden_.data() + (t0 + r) * out_;
      const float xi = xi_[t0 + r];
      row_sums[t0 + r] = kernels::dequantized_row_square_error(acc, wi_.data(), xi, g, out_, dt_);
    }
  }
  double sum = 0.0;
  for (double s : row_sums) sum += s;
  const float mean = rd(static_cast<float>(sum / (static_cast<double>(n_) * static_cast<double>(out_))));
  const float rms = rd(std::sqrt(mean));
  return rd(rms / golden_rms_);  // the dtype's resolution is what msModelSlim compares (see the header)
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

FlexSearchResult search_flex_alpha_beta(const Tensor& x, const std::vector<const Tensor*>& weights,
                                        DType float_dtype, const FlexSearchOptions& options) {
  FlexErrorEvaluator evaluator(x, weights, float_dtype, options.max_rows);
  return flex_grid_search([&](double alpha, double beta) { return evaluator.error(alpha, beta); });
}

std::vector<float> flex_scales(const std::vector<float>& act_abs_max, const std::vector<float>& weight_abs_max,
                               double alpha, double beta, DType dt) {
  require_float_dtype(dt);
  require_exponents(alpha, beta);
  require_size(weight_abs_max, static_cast<std::int64_t>(act_abs_max.size()), "weight statistics");
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  std::vector<float> s(act_abs_max.size());
  for (std::size_t j = 0; j < s.size(); ++j) {
    const float a = round_to_float_dtype(act_abs_max[j], dt);
    const float w = round_to_float_dtype(std::max(round_to_float_dtype(weight_abs_max[j], dt), kScaleMin), dt);
    const float ratio =
        round_to_float_dtype(round_to_float_dtype(torch_pow(a, fa), dt) / round_to_float_dtype(torch_pow(w, fb), dt),
                             dt);
    s[j] = round_to_float_dtype(std::max(ratio, kScaleMin), dt);
  }
  return s;
}

void flex_smooth_norm_linear(Tensor& norm_weight, const std::vector<Tensor*>& linears,
                             const std::vector<float>& act_abs_max, double alpha, double beta, DType dt) {
  require_float_dtype(dt);
  require_exponents(alpha, beta);
  if (norm_weight.rank() != 1) invalid("norm weight", "expected a vector, got " + shape_to_string(norm_weight.shape()));
  const std::int64_t c = norm_weight.dim(0);
  require_vector(norm_weight, c, "norm weight");
  if (linears.empty()) invalid("smoothed linears", "no linears");
  require_distinct(linears, "smoothed linears");
  for (const Tensor* t : linears) require_matrix(*t, -1, c, "smoothed linear", true);
  require_size(act_abs_max, c, "norm output statistics");

  std::vector<float> w(static_cast<std::size_t>(c), 0.0f);
  for (const Tensor* t : linears) column_abs_max(*t, w);
  const std::vector<float> s = flex_scales(act_abs_max, w, alpha, beta, dt);
  for (Tensor* t : linears) scale_columns(*t, s, dt);
  scale_norm(norm_weight, s, dt);
}

void flex_smooth_ov(Tensor& v_weight, Tensor& o_weight, const std::vector<float>& o_input_abs_max,
                    std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim, double alpha, double beta,
                    DType dt) {
  require_float_dtype(dt);
  require_exponents(alpha, beta);
  if (kv_heads <= 0 || head_dim <= 0 || q_heads <= 0 || q_heads % kv_heads != 0) {
    invalid("attention heads", std::to_string(q_heads) + " q heads, " + std::to_string(kv_heads) + " kv heads, head_dim " +
                                   std::to_string(head_dim) + ": q heads must be a positive multiple of kv heads");
  }
  require_matrix(o_weight, -1, q_heads * head_dim, "o_proj weight", true);
  const std::int64_t hidden = o_weight.dim(0);
  require_matrix(v_weight, kv_heads * head_dim, hidden, "v_proj weight", true);
  require_size(o_input_abs_max, q_heads * head_dim, "o_proj input statistics");

  // Group max over the g q heads of each kv head, of a and of the clamped dtype weight statistic separately.
  std::vector<float> w_col(static_cast<std::size_t>(q_heads * head_dim), 0.0f);
  column_abs_max(o_weight, w_col);
  const std::int64_t g = q_heads / kv_heads;
  std::vector<float> a_max(static_cast<std::size_t>(kv_heads * head_dim), 0.0f), w_max(a_max.size(), 0.0f);
  for (std::int64_t k = 0; k < kv_heads; ++k) {
    for (std::int64_t i = 0; i < g; ++i) {
      for (std::int64_t d = 0; d < head_dim; ++d) {
        const std::int64_t col = (k * g + i) * head_dim + d, grp = k * head_dim + d;
        a_max[grp] = std::max(a_max[grp], round_to_float_dtype(o_input_abs_max[col], dt));
        w_max[grp] = std::max(w_max[grp], round_to_float_dtype(std::max(w_col[col], kScaleMin), dt));
      }
    }
  }
  const std::vector<float> group = flex_scales(a_max, w_max, alpha, beta, dt);  // [kv_heads·head_dim]

  scale_rows_by_reciprocal(v_weight, group, dt);
  std::vector<float> o_scale(w_col.size());
  for (std::int64_t col = 0; col < q_heads * head_dim; ++col) {
    o_scale[col] = group[(col / head_dim / g) * head_dim + col % head_dim];  // repeat_interleave over the g heads
  }
  scale_columns(o_weight, o_scale, dt);
}

void scale_columns(Tensor& w, const std::vector<float>& s, DType dt) {
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  float* p = w.mutable_data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) p[r * cols + c] = round_to_float_dtype(p[r * cols + c] * s[c], dt);
  }
}

void scale_rows_by_reciprocal(Tensor& w, const std::vector<float>& s, DType dt) {
  const std::vector<float> r = reciprocals(s, dt);
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  float* p = w.mutable_data<float>();
  for (std::int64_t n = 0; n < rows; ++n) {
    for (std::int64_t c = 0; c < cols; ++c) p[n * cols + c] = round_to_float_dtype(p[n * cols + c] * r[n], dt);
  }
}

void scale_norm(Tensor& gamma, const std::vector<float>& s, DType dt) {
  const std::vector<float> r = reciprocals(s, dt);
  float* g = gamma.mutable_data<float>();
  for (std::size_t i = 0; i < r.size(); ++i) g[i] = round_to_float_dtype(g[i] * r[i], dt);
}

std::vector<float> moe_input_scales(const std::vector<const Tensor*>& expert_gate_up,
                                    const std::vector<float>& act_abs_max, double alpha, double beta, DType dt) {
  // The router is not in w: it stays float, so its column range is no quantization concern; it only follows
  // the scales so that routing does not move.
  std::vector<float> w(act_abs_max.size(), 0.0f);
  for (const Tensor* t : expert_gate_up) column_abs_max(*t, w);
  return flex_scales(act_abs_max, w, alpha, beta, dt);
}

std::vector<float> up_down_scales(const Tensor& down, const std::vector<float>& inter_abs_max, double alpha,
                                  double beta, DType dt) {
  if (inter_abs_max.empty()) return {};  // the expert saw no token: nothing to balance, s = 1
  std::vector<float> w(inter_abs_max.size(), 0.0f);
  column_abs_max(down, w);
  return flex_scales(inter_abs_max, w, alpha, beta, dt);
}

void smooth_moe_input(Tensor& norm_weight, Tensor& router, const std::vector<Tensor*>& expert_gate_up,
                      const std::vector<float>& act_abs_max, double alpha, double beta, DType dt) {
  require_float_dtype(dt);
  require_exponents(alpha, beta);
  if (norm_weight.rank() != 1) {
    invalid("post_attention_layernorm weight", "expected a vector, got " + shape_to_string(norm_weight.shape()));
  }
  const std::int64_t hidden = norm_weight.dim(0);
  require_vector(norm_weight, hidden, "post_attention_layernorm weight");
  require_matrix(router, -1, hidden, "router weight", true);
  if (expert_gate_up.empty()) invalid("expert gate/up weights", "no experts");
  require_distinct(expert_gate_up, "expert gate/up weights");
  for (const Tensor* t : expert_gate_up) {
    if (t == &router) invalid("expert gate/up weights", "the router is listed among the experts");
    require_matrix(*t, -1, hidden, "expert gate/up weight", true);
  }
  require_size(act_abs_max, hidden, "MoE input statistics");

  const std::vector<float> s =
      moe_input_scales({expert_gate_up.begin(), expert_gate_up.end()}, act_abs_max, alpha, beta, dt);
  for (Tensor* t : expert_gate_up) scale_columns(*t, s, dt);
  scale_columns(router, s, dt);
  scale_norm(norm_weight, s, dt);
}

void smooth_up_down(Tensor& up, Tensor& down, const std::vector<float>& inter_abs_max, double alpha, double beta,
                    DType dt) {
  require_float_dtype(dt);
  require_exponents(alpha, beta);
  require_matrix(up, -1, -1, "up_proj weight", true);
  const std::int64_t inter = up.dim(0), hidden = up.dim(1);
  require_matrix(down, hidden, inter, "down_proj weight", true);
  if (inter_abs_max.empty()) return;  // the expert saw no token: nothing to balance, s = 1
  require_size(inter_abs_max, inter, "down_proj input statistics");

  const std::vector<float> s = up_down_scales(down, inter_abs_max, alpha, beta, dt);
  scale_columns(down, s, dt);
  scale_rows_by_reciprocal(up, s, dt);
}

}  // namespace moeslim::quant
