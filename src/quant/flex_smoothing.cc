#include "quant/flex_smoothing.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "quant/flex_checks.h"

namespace moeslim::quant {
namespace {

using flex::invalid;
using flex::require_distinct;
using flex::require_exponents;
using flex::require_float_dtype;
using flex::require_matrix;
using flex::require_size;
using flex::require_vector;
using flex::torch_pow;

constexpr float kScaleMin = 1e-5f;  // FlexSmoothScaleCalculator's clamp, applied in float32 before the dtype cast

}  // namespace

void accumulate_column_abs_max(const Tensor& w, std::vector<float>& out) {
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    w.read_f32(static_cast<std::size_t>(r * cols), static_cast<std::size_t>(cols), row.data());
    for (std::int64_t c = 0; c < cols; ++c) out[c] = std::max(out[c], std::fabs(row[c]));
  }
}

namespace {

// msModelSlim's `1.0 / scales` on the dtype tensor: the producer side is multiplied by this, never divided by s.
std::vector<float> reciprocals(const std::vector<float>& s, DType dt) {
  std::vector<float> r(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) r[i] = round_to_float_dtype(1.0f / s[i], dt);
  return r;
}

}  // namespace

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

std::vector<float> flex_smooth_norm_linear(Tensor& norm_weight, const std::vector<Tensor*>& linears,
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
  for (const Tensor* t : linears) accumulate_column_abs_max(*t, w);
  const std::vector<float> s = flex_scales(act_abs_max, w, alpha, beta, dt);
  for (Tensor* t : linears) scale_columns(*t, s, dt);
  scale_norm(norm_weight, s, dt);
  return s;
}

std::vector<float> flex_smooth_ov(Tensor& v_weight, Tensor& o_weight, const std::vector<float>& o_input_abs_max,
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
  accumulate_column_abs_max(o_weight, w_col);
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
  return o_scale;
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
  for (const Tensor* t : expert_gate_up) accumulate_column_abs_max(*t, w);
  return flex_scales(act_abs_max, w, alpha, beta, dt);
}

std::vector<float> up_down_scales(const Tensor& down, const std::vector<float>& inter_abs_max, double alpha,
                                  double beta, DType dt) {
  if (inter_abs_max.empty()) return {};  // the expert saw no token: nothing to balance, s = 1
  std::vector<float> w(inter_abs_max.size(), 0.0f);
  accumulate_column_abs_max(down, w);
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
