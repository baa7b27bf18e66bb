#include "kernels/block_rotation.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::bits_of_all;
using testing::random_floats;
using testing::ScopedKernelIsa;

// Block sizes of the rotations (32-blocks of the hidden size, head_dim 64/128) and one the AVX-512 path
// does not take (not a multiple of 32).
const std::int64_t kBlocks[] = {32, 64, 128, 24};

// Random values with float32 denormals and signed zeros mixed in.
std::vector<float> test_values(std::size_t n, std::uint32_t seed) {
  std::vector<float> v = random_floats(n, seed, -2.0f, 2.0f);
  for (std::size_t i = 0; i < n; i += 5) v[i] *= 1e-39f;
  for (std::size_t i = 3; i < n; i += 11) v[i] = (i % 2 == 0) ? 0.0f : -0.0f;
  return v;
}

// The defining sum order, written out: y[j] = ((0 + x0·m0j) + x1·m1j) + …
float ordered_sum(const float* m, std::int64_t k, const float* x, std::int64_t j, std::int64_t stride_x,
                  std::int64_t stride_m, std::int64_t step_m) {
  float acc = 0.0f;
  for (std::int64_t i = 0; i < k; ++i) acc = acc + x[i * stride_x] * m[i * stride_m + j * step_m];
  return acc;
}

TEST(BlockRotation, RightProductIsTheOrderedSumOnEveryPath) {
  for (const std::int64_t k : kBlocks) {
    for (const std::int64_t rows : {1, 3, 4, 5, 9}) {
      const std::int64_t ld = 2 * k + 3;  // rows of a wider matrix: the block is a column window
      const std::vector<float> m = test_values(static_cast<std::size_t>(k * k), 1);
      const std::vector<float> x = test_values(static_cast<std::size_t>(rows * ld), 2);
      std::vector<float> expected(x.size(), 7.0f);
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < k; ++j) {
          expected[r * ld + j] = ordered_sum(m.data(), k, x.data() + r * ld, j, 1, k, 1);
        }
      }
      for (const KernelIsa isa : testing::runnable_isas()) {
        ScopedKernelIsa scoped(isa);
        std::vector<float> y(x.size(), 7.0f);
        right_multiply_block(m.data(), k, x.data(), rows, ld, y.data());
        ASSERT_EQ(bits_of_all(y), bits_of_all(expected)) << kernel_isa_name(isa) << " k=" << k << " rows=" << rows;
      }
    }
  }
}

TEST(BlockRotation, LeftTransposedProductIsTheOrderedSumOnEveryPath) {
  for (const std::int64_t k : kBlocks) {
    for (const std::int64_t w : {1, 15, 16, 17, 100}) {
      const std::vector<float> m = test_values(static_cast<std::size_t>(k * k), 3);
      const std::vector<float> in = test_values(static_cast<std::size_t>(k * w), 4);
      std::vector<float> expected(in.size());
      for (std::int64_t j = 0; j < k; ++j) {
        for (std::int64_t c = 0; c < w; ++c) {
          expected[j * w + c] = ordered_sum(m.data(), k, in.data() + c, j, w, k, 1);
        }
      }
      for (const KernelIsa isa : testing::runnable_isas()) {
        ScopedKernelIsa scoped(isa);
        std::vector<float> out(in.size());
        left_multiply_block_transposed(m.data(), k, in.data(), w, out.data());
        ASSERT_EQ(bits_of_all(out), bits_of_all(expected)) << kernel_isa_name(isa) << " k=" << k << " w=" << w;
      }
    }
  }
}

}  // namespace
}  // namespace moeslim::kernels
