#include "model/weight_only_linear.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "model/quantized_linear.h"

namespace moeslim::model {
namespace {

[[noreturn]] void invalid(const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "W4A16 linear: " + what);
}

std::string describe(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()); }

// A [out, groups] F32 tensor's values (views need not be aligned).
std::vector<float> group_values(const Tensor& t, std::int64_t out, const char* what) {
  if (t.dtype() != DType::kF32 || t.rank() != 2 || t.dim(0) != out || t.dim(1) < 1) {
    invalid(std::string(what) + " must be F32 [" + std::to_string(out) + ", groups], got " + describe(t));
  }
  std::vector<float> v(t.numel());
  std::memcpy(v.data(), t.bytes(), v.size() * sizeof(float));
  return v;
}

class W4A16Linear final : public Linear {
 public:
  explicit W4A16Linear(std::unique_ptr<Linear> dequantized) : dequantized_(std::move(dequantized)) {}
  std::int64_t in_features() const override { return dequantized_->in_features(); }
  std::int64_t out_features() const override { return dequantized_->out_features(); }
  void forward(const float* x, std::int64_t rows, float* y) const override { dequantized_->forward(x, rows, y); }
  std::string kind() const override { return "w4a16"; }

 private:
  std::unique_ptr<Linear> dequantized_;
};

}  // namespace

Tensor dequantize_w4a16(const Tensor& codes, const Tensor& scale, const Tensor& zero_point, DType float_dtype) {
  check_int4_codes(codes);
  if (!is_float_dtype(float_dtype)) invalid("the float dtype must be BF16, F16 or F32");
  const std::int64_t out = codes.dim(0), in = codes.dim(1);
  const std::vector<float> s = group_values(scale, out, "weight_scale");
  const std::int64_t groups = scale.dim(1);
  if (in % groups != 0) {
    invalid(std::to_string(groups) + " scale groups do not divide the " + std::to_string(in) + " input columns");
  }
  std::vector<float> z;
  if (!zero_point.empty()) {
    z = group_values(zero_point, out, "weight_zero_point");
    if (zero_point.dim(1) != groups) invalid("weight_zero_point " + describe(zero_point) + " does not match the scale");
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!(std::isfinite(s[i]) && s[i] > 0.0f)) {
      invalid("scale " + std::to_string(s[i]) + " of row " + std::to_string(i / groups) + ", group " +
              std::to_string(i % groups) + " is not a positive finite number");
    }
    if (!z.empty() && !(z[i] >= -8.0f && z[i] <= 7.0f && z[i] == std::nearbyint(z[i]))) {
      invalid("zero point " + std::to_string(z[i]) + " of row " + std::to_string(i / groups) + ", group " +
              std::to_string(i % groups) + " is not an integer in [-8, 7]");
    }
  }
  const std::int64_t group_size = in / groups;
  // Row by row: (q − z)·s in float32 (exact for a BF16 or F16 scale), then one rounding to the dtype.
  Tensor w = Tensor::zeros(float_dtype, {out, in});
  const auto* q = codes.data<std::int8_t>();
  std::vector<float> row(static_cast<std::size_t>(in));
  for (std::int64_t r = 0; r < out; ++r) {
    for (std::int64_t c = 0; c < in; ++c) {
      const std::size_t g = static_cast<std::size_t>(r * groups + c / group_size);
      row[static_cast<std::size_t>(c)] = (static_cast<float>(q[r * in + c]) - (z.empty() ? 0.0f : z[g])) * s[g];
    }
    const auto n = static_cast<std::size_t>(in);
    if (float_dtype == DType::kF32) {
      std::copy(row.begin(), row.end(), w.mutable_data<float>() + r * in);
    } else if (float_dtype == DType::kBF16) {
      f32_to_bf16(row.data(), w.mutable_data<std::uint16_t>() + r * in, n);
    } else {
      std::uint16_t* dst = w.mutable_data<std::uint16_t>() + r * in;
      for (std::size_t c = 0; c < n; ++c) dst[c] = f32_to_f16(row[c]);
    }
  }
  return w;
}

std::unique_ptr<Linear> make_w4a16_linear(const Tensor& codes, const Tensor& scale, const Tensor& zero_point,
                                          const Tensor& bias, DType float_dtype, FloatPrecision precision) {
  return std::make_unique<W4A16Linear>(
      make_float_linear(dequantize_w4a16(codes, scale, zero_point, float_dtype), bias, precision));
}

}  // namespace moeslim::model
