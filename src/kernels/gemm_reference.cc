#include "kernels/gemm_reference.h"

#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace moeslim::kernels {
namespace {

double weight_value(const std::uint16_t* w, std::int64_t i) { return moeslim::bf16_to_f32(w[i]); }
double weight_value(const float* w, std::int64_t i) { return w[i]; }

template <typename W, typename Out>
void reference_float(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const W* w, std::int64_t n,
                     std::int64_t ldw, Out* y, std::int64_t ldy) {
  for (std::int64_t r = 0; r < m; ++r) {
    for (std::int64_t c = 0; c < n; ++c) {
      double sum = 0.0;
      for (std::int64_t i = 0; i < k; ++i) sum += static_cast<double>(x[r * ldx + i]) * weight_value(w, c * ldw + i);
      y[r * ldy + c] = static_cast<Out>(sum);
    }
  }
}

template <typename Act>
void reference_int(const Act* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const std::int8_t* w,
                   std::int64_t n, std::int64_t ldw, std::int32_t* y, std::int64_t ldy) {
  for (std::int64_t r = 0; r < m; ++r) {
    for (std::int64_t c = 0; c < n; ++c) {
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < k; ++i) sum += static_cast<std::int64_t>(x[r * ldx + i]) * w[c * ldw + i];
      if (sum > std::numeric_limits<std::int32_t>::max() || sum < std::numeric_limits<std::int32_t>::min()) {
        throw Error(ErrorCode::kInternal, "reference_gemm_s32: a sum overflows int32");
      }
      y[r * ldy + c] = static_cast<std::int32_t>(sum);
    }
  }
}

}  // namespace

void reference_gemm(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const std::uint16_t* w_bf16,
                    std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy) {
  reference_float(x, m, k, ldx, w_bf16, n, ldw, y, ldy);
}

void reference_gemm(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx, const float* w,
                    std::int64_t n, std::int64_t ldw, float* y, std::int64_t ldy) {
  reference_float(x, m, k, ldx, w, n, ldw, y, ldy);
}

void reference_gemm_f64(const float* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::uint16_t* w_bf16, std::int64_t n, std::int64_t ldw, double* y) {
  reference_float(x, m, k, ldx, w_bf16, n, ldw, y, n);
}

void reference_gemm_s32(const std::uint8_t* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::int8_t* w, std::int64_t n, std::int64_t ldw, std::int32_t* y, std::int64_t ldy) {
  reference_int(x, m, k, ldx, w, n, ldw, y, ldy);
}

void reference_gemm_s32(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t ldx,
                        const std::int8_t* w, std::int64_t n, std::int64_t ldw, std::int32_t* y, std::int64_t ldy) {
  reference_int(x, m, k, ldx, w, n, ldw, y, ldy);
}

}  // namespace moeslim::kernels
