// Float linear layers over the kernels' prepared GEMM weights.
#include <cstring>

#include "core/error.h"
#include "kernels/gemm.h"
#include "model/linear.h"

namespace moeslim::model {

kernels::GemmPrecision gemm_precision(FloatPrecision p) {
  return p == FloatPrecision::kBF16 ? kernels::GemmPrecision::kBF16 : kernels::GemmPrecision::kF32;
}

namespace {

class FloatLinear final : public Linear {
 public:
  FloatLinear(Tensor weight, Tensor bias, FloatPrecision precision) : bias_(std::move(bias)), precision_(precision) {
    if (weight.rank() != 2) {
      throw Error(ErrorCode::kInternal, "linear weight must be 2-D, got " + shape_to_string(weight.shape()));
    }
    const std::int64_t n = weight.dim(0);
    const std::int64_t k = weight.dim(1);
    switch (weight.dtype()) {
      case DType::kBF16:
        // The checkpoint's mapped bf16 used in place, no copy: a layer's experts are most of its memory, and a
        // packed copy would hold them twice (5–16 % slower GEMMs at expert shapes on one thread, bench/gemm_bench's
        // "bf16 in place" column; the same bits). Where the GEMM needs another form, from_tensor makes the
        // packed copy itself.
        weight_ = kernels::PreparedWeight::from_tensor(weight, gemm_precision(precision),
                                                       kernels::WeightStorage::kBorrowed);
        break;
      case DType::kF32:
        weight_ = kernels::PreparedWeight::from_f32(weight.data<float>(), n, k, k, gemm_precision(precision));
        break;
      case DType::kF16: {
        const Tensor f32 = weight.to_f32();
        weight_ = kernels::PreparedWeight::from_f32(f32.data<float>(), n, k, k, gemm_precision(precision));
        break;
      }
      default:
        throw Error(ErrorCode::kUnsupported, "float linear weight must be BF16, F16 or F32");
    }
    if (!bias_.empty() && (bias_.dtype() != DType::kF32 || bias_.numel() != static_cast<std::size_t>(n))) {
      throw Error(ErrorCode::kInternal, "linear bias must be F32 [" + std::to_string(n) + "]");
    }
  }

  std::int64_t in_features() const override { return weight_.k(); }
  std::int64_t out_features() const override { return weight_.n(); }
  std::string kind() const override { return kernels::gemm_precision_name(gemm_precision(precision_)); }

  void forward(const float* x, std::int64_t rows, float* y) const override {
    const std::int64_t n = weight_.n();
    kernels::gemm(x, rows, weight_.k(), weight_, y, n);
    if (!bias_.empty()) {
      const float* b = bias_.data<float>();
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < n; ++j) y[r * n + j] += b[j];
      }
    }
  }

 private:
  kernels::PreparedWeight weight_;
  Tensor bias_;
  FloatPrecision precision_;
};

}  // namespace

std::unique_ptr<Linear> make_float_linear(Tensor weight, Tensor bias, FloatPrecision precision) {
  return std::make_unique<FloatLinear>(std::move(weight), std::move(bias), precision);
}

}  // namespace moeslim::model
