// The block products of weight_rotation.h against dense double-precision products, their roundings, and the
// AVX-512 path against the portable one (bit for bit).
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu_features.h"
#include "quant/hadamard.h"
#include "quant/weight_rotation.h"
#include "rotation/rotation_test_util.h"

namespace moeslim::quant {
namespace {

// The block application against a dense x·R (double), for R1 and for R2 repeated over heads.
TEST(BlockRotation, RowProductEqualsTheDenseProduct) {
  const std::int64_t n = 128;
  for (const BlockRotation& r : {make_r1(n), make_r2(64)}) {
    const Dense d = to_dense(r.dense(n));
    const Tensor x = random_matrix(DType::kF32, 5, n, 7);
    std::vector<float> y(static_cast<std::size_t>(n));
    for (std::int64_t row = 0; row < 5; ++row) {
      const float* xr = x.data<float>() + row * n;
      multiply_row(r, xr, n, y.data());
      for (std::int64_t j = 0; j < n; ++j) {
        double want = 0;
        for (std::int64_t i = 0; i < n; ++i) want += xr[i] * d[i * n + j];
        ASSERT_NEAR(y[j], want, 1e-5) << row << "," << j;
      }
    }
  }
}

TEST(BlockRotation, WeightProductsMatchDenseAndRoundOnceToTheDtype) {
  const std::int64_t rows = 192, cols = 128;
  const BlockRotation r1 = make_r1(cols);
  const Dense d = to_dense(r1.dense(cols));
  const Tensor w32 = random_matrix(DType::kF32, rows, cols, 11);
  const Tensor w16 = random_matrix(DType::kBF16, rows, cols, 11);  // the same values in bf16
  const Tensor gamma = random_matrix(DType::kBF16, 1, cols, 12).reshaped({cols});

  // W·R1 (float32), then the bf16 version equals it rounded, and the fold is its own rounding step.
  const Tensor right32 = right_multiply(w32, r1);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = 0; j < cols; ++j) {
      double want = 0;
      for (std::int64_t i = 0; i < cols; ++i) want += w32.data<float>()[r * cols + i] * d[i * cols + j];
      ASSERT_NEAR(right32.data<float>()[r * cols + j], want, 1e-5);
    }
  }
  const Tensor right16 = right_multiply(w16, r1);
  ASSERT_EQ(right16.dtype(), DType::kBF16);
  ASSERT_FALSE(right16.is_view());
  const Tensor right16_f = right16.to_f32();
  for (std::size_t e = 0; e < right16.numel(); ++e) {
    ASSERT_EQ(right16_f.data<float>()[e], round_to_bf16(right32.data<float>()[e]));
  }
  Tensor folded = w32.clone();
  const Tensor g = gamma.to_f32();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      float& v = folded.mutable_data<float>()[r * cols + c];
      v = round_to_bf16(v * g.data<float>()[c]);
    }
  const Tensor fold16 = right_multiply(w16, r1, gamma).to_f32();
  const Tensor fold_then_rotate = right_multiply(folded, r1);
  for (std::size_t e = 0; e < fold16.numel(); ++e) {
    ASSERT_EQ(fold16.data<float>()[e], round_to_bf16(fold_then_rotate.data<float>()[e]));
  }

  // Rᵀ·W with R = R2 per 64-row head (3 heads) and R = R1 over 128-row tensors.
  for (const BlockRotation& r : {make_r2(64), r1}) {
    const std::int64_t n = r.block == 64 ? rows : cols;
    const Tensor w = random_matrix(DType::kF32, n, 96, 13);
    const Dense rd = to_dense(r.dense(n));
    const Tensor left = left_multiply_transposed(r, w);
    for (std::int64_t j = 0; j < n; ++j) {
      for (std::int64_t c = 0; c < 96; ++c) {
        double want = 0;
        for (std::int64_t i = 0; i < n; ++i) want += rd[i * n + j] * w.data<float>()[i * 96 + c];
        ASSERT_NEAR(left.data<float>()[j * 96 + c], want, 1e-5) << j << "," << c;
      }
    }
  }
}

TEST(BlockRotation, RejectsShapesTheRotationDoesNotFit) {
  const BlockRotation r1 = make_r1(128);
  EXPECT_THROW(right_multiply(Tensor::zeros(DType::kBF16, {4, 100}), r1), Error);
  EXPECT_THROW(left_multiply_transposed(r1, Tensor::zeros(DType::kBF16, {100, 4})), Error);
  EXPECT_THROW(right_multiply(Tensor::zeros(DType::kI8, {4, 128}), r1), Error);
  EXPECT_THROW(right_multiply(Tensor::zeros(DType::kBF16, {4, 128}), r1, Tensor::zeros(DType::kBF16, {64})), Error);
}

TEST(BlockRotation, F16WeightsStayF16) {
  const BlockRotation r1 = make_r1(64);
  const Tensor w32 = random_matrix(DType::kF32, 8, 64, 31);
  Tensor w16 = Tensor::zeros(DType::kF16, {8, 64});
  for (std::size_t e = 0; e < w32.numel(); ++e) w16.mutable_data<std::uint16_t>()[e] = f32_to_f16(w32.data<float>()[e]);
  const Tensor want = right_multiply(w16.to_f32(), r1);
  const Tensor got = right_multiply(w16, r1);
  ASSERT_EQ(got.dtype(), DType::kF16);
  for (std::size_t e = 0; e < got.numel(); ++e) {
    ASSERT_EQ(f16_to_f32(got.data<std::uint16_t>()[e]), round_to_float_dtype(want.data<float>()[e], DType::kF16));
  }
}

// Forces a kernel path for one scope.
class ScopedIsa {
 public:
  explicit ScopedIsa(kernels::KernelIsa isa) { kernels::set_kernel_isa(isa); }
  ~ScopedIsa() { kernels::set_kernel_isa(kernels::best_kernel_isa()); }
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

TEST(WeightRotation, Avx512AndPortablePathsAreBitIdentical) {
  if (kernels::best_kernel_isa() != kernels::KernelIsa::kAvx512) GTEST_SKIP() << "this CPU has no AVX-512";
  const BlockRotation r1 = make_r1(256), r2 = make_r2(64);
  for (DType dtype : {DType::kBF16, DType::kF32}) {
    // 103 rows: row groups of 4 and a remainder; 200 columns in left products: a masked tail.
    const Tensor w = random_matrix(dtype, 103, 256, 21);
    const Tensor wl = random_matrix(dtype, 256, 200, 22);
    const Tensor gamma = random_matrix(DType::kBF16, 1, 256, 23).reshaped({256});
    Tensor fast[4], portable[4];
    for (int pass = 0; pass < 2; ++pass) {
      ScopedIsa isa(pass == 0 ? kernels::KernelIsa::kAvx512 : kernels::KernelIsa::kPortable);
      Tensor* out = pass == 0 ? fast : portable;
      out[0] = right_multiply(w, r1, gamma);
      out[1] = right_multiply(w, r2);
      out[2] = left_multiply_transposed(r1, wl);
      out[3] = left_multiply_transposed(r2, wl);
    }
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_bytes(fast[i], portable[i])) << dtype_name(dtype) << " product " << i;
  }
}

}  // namespace
}  // namespace moeslim::quant
