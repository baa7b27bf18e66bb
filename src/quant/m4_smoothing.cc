#include "quant/m4_smoothing.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace moeslim::quant {
namespace {

float round_dt(float v, const SmoothOptions& o) { return round_to_float_dtype(v, o.float_dtype); }

// a^p as PyTorch computes pow on the dtype (in float32, rounded once); sqrt for the usual p = 0.5 is
// correctly rounded, as PyTorch's own pow(x, 0.5) special case is.
float power(float a, float p) { return p == 0.5f ? std::sqrt(a) : std::pow(a, p); }

void require_f32_matrix(const Tensor& t, std::int64_t rows, std::int64_t cols, const char* what) {
  if (t.dtype() != DType::kF32 || t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols || t.is_view()) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " must be an owned F32 [" + std::to_string(rows) +
                                                 ", " + std::to_string(cols) + "] tensor, got " +
                                                 std::string(dtype_name(t.dtype())) + " " +
                                                 shape_to_string(t.shape()));
  }
}

void require_stats(const ChannelStatsObserver& s, std::int64_t channels, const char* what) {
  if (s.rows_observed() == 0) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": no anti-outlier statistics were collected");
  }
  if (s.channels() != channels) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": statistics have " + std::to_string(s.channels()) +
                                                 " channels, the weight " + std::to_string(channels));
  }
}

// max over rows of |W[:, c]| for each column c, accumulated into `out`.
void column_abs_max(const Tensor& w, std::vector<float>& out) {
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  const float* p = w.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      out[static_cast<std::size_t>(c)] = std::max(out[static_cast<std::size_t>(c)], std::fabs(p[r * cols + c]));
    }
  }
}

}  // namespace

std::vector<float> smooth_scales(const std::vector<float>& activation_abs_max,
                                 const std::vector<float>& weight_abs_max, const SmoothOptions& o) {
  if (activation_abs_max.size() != weight_abs_max.size()) {
    throw Error(ErrorCode::kInternal, "smooth_scales: activation and weight statistics differ in size");
  }
  const float scale_min = round_dt(o.scale_min, o);
  std::vector<float> s(activation_abs_max.size());
  for (std::size_t c = 0; c < s.size(); ++c) {
    const float a = round_dt(activation_abs_max[c], o);
    const float w = round_dt(std::max(weight_abs_max[c], o.scale_min), o);
    const float ratio = round_dt(round_dt(power(a, o.alpha), o) / round_dt(power(w, 1.0f - o.alpha), o), o);
    s[c] = std::max(ratio, scale_min);
  }
  return s;
}

std::vector<float> smooth_v_to_o(Tensor& v_weight, Tensor& o_weight, const ChannelStatsObserver& o_input,
                                 std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim,
                                 const SmoothOptions& o) {
  if (kv_heads <= 0 || q_heads % kv_heads != 0) {
    throw Error(ErrorCode::kInvalidArgument, "v->o smoothing: " + std::to_string(q_heads) +
                                                 " attention heads are not a multiple of " +
                                                 std::to_string(kv_heads) + " kv heads");
  }
  const std::int64_t hidden = o_weight.rank() == 2 ? o_weight.dim(0) : 0;
  require_f32_matrix(o_weight, hidden, q_heads * head_dim, "o_proj weight");
  require_f32_matrix(v_weight, kv_heads * head_dim, v_weight.rank() == 2 ? v_weight.dim(1) : 0, "v_proj weight");
  require_stats(o_input, q_heads * head_dim, "o_proj input");

  std::vector<float> w(static_cast<std::size_t>(q_heads * head_dim), 0.0f);
  column_abs_max(o_weight, w);
  const std::vector<float> s = smooth_scales(o_input.abs_max(), w, o);

  // Mean over the g q heads of each kv group (HF repeat_kv order: kv head k serves q heads k·g .. k·g+g−1).
  const std::int64_t g = q_heads / kv_heads;
  std::vector<float> r(static_cast<std::size_t>(kv_heads * head_dim));
  for (std::int64_t k = 0; k < kv_heads; ++k) {
    for (std::int64_t d = 0; d < head_dim; ++d) {
      float sum = 0.0f;
      for (std::int64_t i = 0; i < g; ++i) sum += s[static_cast<std::size_t>((k * g + i) * head_dim + d)];
      r[static_cast<std::size_t>(k * head_dim + d)] = round_dt(round_dt(sum, o) / static_cast<float>(g), o);
    }
  }

  const std::int64_t v_cols = v_weight.dim(1);
  float* v = v_weight.mutable_data<float>();
  for (std::int64_t n = 0; n < kv_heads * head_dim; ++n) {
    const float rn = r[static_cast<std::size_t>(n)];
    for (std::int64_t c = 0; c < v_cols; ++c) v[n * v_cols + c] = round_dt(v[n * v_cols + c] / rn, o);
  }
  const std::int64_t o_cols = q_heads * head_dim;
  std::vector<float> o_divisor(static_cast<std::size_t>(o_cols));
  for (std::int64_t c = 0; c < o_cols; ++c) {
    o_divisor[static_cast<std::size_t>(c)] = r[static_cast<std::size_t>(c / head_dim / g * head_dim + c % head_dim)];
  }
  float* ow = o_weight.mutable_data<float>();
  for (std::int64_t row = 0; row < hidden; ++row) {
    for (std::int64_t c = 0; c < o_cols; ++c) {
      ow[row * o_cols + c] = round_dt(ow[row * o_cols + c] * o_divisor[static_cast<std::size_t>(c)], o);
    }
  }
  return o_divisor;
}

NormLinearSmoothing smooth_norm_to_linears(const Tensor& norm_weight, const std::vector<Tensor*>& linears,
                                           const ChannelStatsObserver& input, const SmoothOptions& o) {
  const std::int64_t hidden = static_cast<std::int64_t>(norm_weight.numel());
  if (norm_weight.dtype() != DType::kF32 || linears.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "norm->linear smoothing needs an F32 norm weight and linears");
  }
  for (const Tensor* t : linears) require_f32_matrix(*t, t->rank() == 2 ? t->dim(0) : 0, hidden, "smoothed linear");
  require_stats(input, hidden, "norm output");

  std::vector<float> w(static_cast<std::size_t>(hidden), 0.0f);
  for (const Tensor* t : linears) column_abs_max(*t, w);
  const std::vector<float> s = smooth_scales(input.abs_max(), w, o);

  // shift = (max + min) / 2 on the dtype's statistics.
  std::vector<float> shift(static_cast<std::size_t>(hidden));
  for (std::size_t c = 0; c < shift.size(); ++c) {
    shift[c] = round_dt(round_dt(round_dt(input.max()[c], o) + round_dt(input.min()[c], o), o) / 2.0f, o);
  }

  NormLinearSmoothing out;
  out.norm_weight = Tensor::zeros(DType::kF32, {hidden});
  out.norm_bias = Tensor::zeros(DType::kF32, {hidden});
  const float* gamma = norm_weight.data<float>();
  for (std::int64_t c = 0; c < hidden; ++c) {
    const auto i = static_cast<std::size_t>(c);
    out.norm_weight.mutable_data<float>()[c] = round_dt(gamma[c] / s[i], o);
    out.norm_bias.mutable_data<float>()[c] = round_dt(-shift[i] / s[i], o);
  }
  for (Tensor* t : linears) {
    const std::int64_t rows = t->dim(0);
    Tensor bias = Tensor::zeros(DType::kF32, {rows});
    float* wp = t->mutable_data<float>();
    for (std::int64_t n = 0; n < rows; ++n) {
      float* row = wp + n * hidden;
      float acc = 0.0f;  // float32 accumulation of the dtype products, as a bf16 matmul does
      for (std::int64_t c = 0; c < hidden; ++c) acc += row[c] * shift[static_cast<std::size_t>(c)];
      bias.mutable_data<float>()[n] = round_dt(acc, o);
      for (std::int64_t c = 0; c < hidden; ++c) row[c] = round_dt(row[c] * s[static_cast<std::size_t>(c)], o);
    }
    out.linear_biases.push_back(std::move(bias));
  }
  out.shift = std::move(shift);
  out.scale = s;
  return out;
}

}  // namespace moeslim::quant
