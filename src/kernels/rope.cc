#include <cmath>

#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/ops_common.h"
#include "kernels/simd_avx512.h"

namespace moeslim::kernels {
namespace {

void rotate_head_portable(float* x, const float* c, const float* s, std::int64_t half) {
  for (std::int64_t i = 0; i < half; ++i) {
    const float a = x[i];
    const float b = x[i + half];
    x[i] = a * c[i] - b * s[i];
    x[i + half] = b * c[i] + a * s[i];
  }
}

MOESLIM_AVX512 void rotate_head_avx512(float* x, const float* c, const float* s, std::int64_t half) {
  for (std::int64_t i = 0; i < half; i += 16) {
    const __mmask16 m = detail::first_lanes(half - i);
    const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 b = _mm512_maskz_loadu_ps(m, x + i + half);
    const __m512 cv = _mm512_maskz_loadu_ps(m, c + i);
    const __m512 sv = _mm512_maskz_loadu_ps(m, s + i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
    _mm512_mask_storeu_ps(x + i + half, m, _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
  }
}

}  // namespace

std::vector<float> rope_inv_freq(std::int64_t head_dim, double theta) {
  detail::require(head_dim >= 2 && head_dim % 2 == 0 && theta > 0, "rope_inv_freq",
                  "head_dim must be even and theta positive, got head_dim=" + std::to_string(head_dim));
  // PyTorch: exponent = float(2i) / dim in float32; base ** exponent with the base cast to float32 (pow of two
  // floats, ≤1 ulp in PyTorch; here pow in double rounded once, the correctly rounded value); then 1.0 / that.
  const auto base = static_cast<float>(theta);
  std::vector<float> inv_freq(static_cast<std::size_t>(head_dim / 2));
  for (std::int64_t i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const auto power = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    inv_freq[static_cast<std::size_t>(i)] = 1.0f / power;
  }
  return inv_freq;
}

RopeTable::RopeTable(const std::int64_t* positions, std::int64_t tokens, std::int64_t head_dim, double theta)
    : tokens_(tokens), head_dim_(head_dim) {
  detail::require(tokens >= 0 && (tokens == 0 || positions != nullptr), "RopeTable", "bad token count");
  const std::vector<float> inv_freq = rope_inv_freq(head_dim, theta);
  const std::int64_t half = head_dim / 2;
  cos_.resize(static_cast<std::size_t>(tokens * half));
  sin_.resize(cos_.size());
  for (std::int64_t t = 0; t < tokens; ++t) {
    const auto p = static_cast<float>(positions[t]);
    for (std::int64_t i = 0; i < half; ++i) {
      const float angle = p * inv_freq[static_cast<std::size_t>(i)];
      cos_[static_cast<std::size_t>(t * half + i)] = std::cos(angle);
      sin_[static_cast<std::size_t>(t * half + i)] = std::sin(angle);
    }
  }
}

void RopeTable::apply(float* x, std::int64_t heads, std::int64_t row_stride) const {
  detail::require(heads >= 1 && (tokens_ == 0 || x != nullptr), "RopeTable::apply", "bad arguments");
  const std::int64_t stride = row_stride == 0 ? heads * head_dim_ : row_stride;
  detail::require(stride >= heads * head_dim_, "RopeTable::apply", "row stride smaller than heads*head_dim");
  const std::int64_t half = head_dim_ / 2;
  const bool simd = active_kernel_isa() == KernelIsa::kAvx512;
  detail::for_each_row(tokens_, heads * head_dim_, [&](std::int64_t t) {
    for (std::int64_t h = 0; h < heads; ++h) {
      float* head = x + t * stride + h * head_dim_;
      simd ? rotate_head_avx512(head, cos_row(t), sin_row(t), half)
           : rotate_head_portable(head, cos_row(t), sin_row(t), half);
    }
  });
}

void rope_rotate_half(float* x, std::int64_t tokens, std::int64_t heads, std::int64_t head_dim,
                      const std::int64_t* positions, double theta) {
  RopeTable(positions, tokens, head_dim, theta).apply(x, heads);
}

}  // namespace moeslim::kernels
