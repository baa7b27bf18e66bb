#include "kernels/quant_rows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/half.h"
#include "kernels/simd_avx512.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::bits_of;
using testing::bits_of_all;
using testing::random_floats;
using testing::random_ints;
using testing::ScopedKernelIsa;

// Around the 16-lane width (tails of every length) and the 8-wide partial sums, plus a model-like row.
const std::int64_t kLengths[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 257, 2048};
const DType kDtypes[] = {DType::kBF16, DType::kF16, DType::kF32};
const CodeRange kRanges[] = {{-128.0f, 127.0f}, {-127.0f, 127.0f}, {-8.0f, 7.0f}};

bool has_avx512() { return testing::runnable_isas().size() > 1; }

// A row that exercises the rounding: random values, exact ties x/scale = k + 0.5 (scale a power of two, so the
// quotient is exact and dt keeps it), values that clamp, zeros of both signs, and float32 denormals.
std::vector<float> test_row(std::int64_t n, std::uint32_t seed, float scale) {
  std::vector<float> x = random_floats(static_cast<std::size_t>(n), seed, -140.0f * scale, 140.0f * scale);
  const std::vector<int> k = random_ints<int>(x.size(), seed + 1, -130, 130);
  for (std::size_t i = 0; i < x.size(); ++i) {
    switch (i % 7) {
      case 1: x[i] = (static_cast<float>(k[i]) + 0.5f) * scale; break;  // a tie
      case 3: x[i] = (i % 2 == 0 ? 1.0f : -1.0f) * 1e-40f * static_cast<float>(k[i]); break;  // denormal (or ±0)
      case 5: x[i] = (i % 2 == 0 ? 0.0f : -0.0f); break;
      default: break;
    }
  }
  return x;
}

// Runs fn on the portable path and, where the CPU has it, the AVX-512 path; both results must be equal.
template <class Fn>
auto on_both_paths(Fn fn) {
  decltype(fn()) portable;
  {
    ScopedKernelIsa isa(KernelIsa::kPortable);
    portable = fn();
  }
  if (has_avx512()) {
    ScopedKernelIsa isa(KernelIsa::kAvx512);
    EXPECT_EQ(fn(), portable);
  }
  return portable;
}

MOESLIM_AVX512 void round_to_bf16_avx512_array(const float* x, float* out, std::size_t n) {
  for (std::size_t i = 0; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, detail::round_to_bf16_non_nan_avx512(_mm512_loadu_ps(x + i)));
  }
}

TEST(Bf16Rounding, NonNanFormMatchesTheNanSafeOneAndItsAvx512Mirror) {
  std::vector<float> x;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << 32); b += 65521) {  // every exponent, both signs
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(b));
    if (!std::isnan(f)) x.push_back(f);
  }
  for (const float f : x) ASSERT_EQ(bits_of(round_to_bf16_non_nan(f)), bits_of(round_to_bf16(f))) << f;
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512";
  x.resize(x.size() / 16 * 16);
  std::vector<float> simd(x.size());
  round_to_bf16_avx512_array(x.data(), simd.data(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(bits_of(simd[i]), bits_of(round_to_bf16(x[i]))) << i;
}

TEST(QuantizeRowCodes, IsClampedRneOfTheDtypeQuotientOnBothPaths) {
  for (const DType dt : kDtypes) {
    for (const CodeRange range : kRanges) {
      for (const std::int64_t n : kLengths) {
        const float scale = 0.0078125f;  // 2^-7
        const std::vector<float> x = test_row(n, static_cast<std::uint32_t>(n), scale);
        const std::vector<std::int8_t> codes = on_both_paths([&] {
          std::vector<std::int8_t> c(x.size());
          quantize_row_codes(x.data(), n, scale, dt, range, c.data());
          return c;
        });
        for (std::int64_t i = 0; i < n; ++i) {
          const float expected =
              std::fmin(std::fmax(std::nearbyint(round_to_float_dtype(x[i] / scale, dt)), range.lo), range.hi);
          ASSERT_EQ(codes[i], static_cast<std::int8_t>(expected)) << dtype_name(dt) << " n=" << n << " i=" << i;
        }
      }
    }
  }
}

TEST(QuantizeCodesElementwise, EqualsTheRowKernelPerElementAndTheAsymmetricFormula) {
  // Each element with its own scale: with zero points 0 the codes of quantize_row_codes for that scale, bit for
  // bit; with integer zero points clamp(rne(dt(x / s)) + z, lo, hi); the residual base − (q − z)·s in float32.
  for (const DType dt : kDtypes) {
    for (const CodeRange range : kRanges) {
      for (const std::int64_t n : kLengths) {
        const float unit = 0.0078125f;
        const std::vector<float> x = test_row(n, static_cast<std::uint32_t>(5 * n), unit);
        const std::vector<int> k = random_ints<int>(x.size(), 7, 0, 3);
        const std::vector<float> base = random_floats(x.size(), 8);
        std::vector<float> scale(x.size()), zero(x.size(), 0.0f), z_asym(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
          scale[i] = unit * static_cast<float>(1 << k[i]) * (k[i] == 3 ? 0.75f : 1.0f);  // ties, and not
          z_asym[i] = static_cast<float>(k[i] * 5 - 7);
        }
        using Out = std::pair<std::vector<std::int8_t>, std::vector<float>>;
        for (const std::vector<float>* z : {&zero, &z_asym}) {
          const Out got = on_both_paths([&] {
            Out o{std::vector<std::int8_t>(x.size()), std::vector<float>(x.size())};
            quantize_codes_elementwise(x.data(), scale.data(), z->data(), n, dt, range, o.first.data(), base.data(),
                                       o.second.data());
            return o;
          });
          std::vector<std::int8_t> no_residual(x.size());
          quantize_codes_elementwise(x.data(), scale.data(), z->data(), n, dt, range, no_residual.data());
          ASSERT_EQ(no_residual, got.first);
          for (std::int64_t i = 0; i < n; ++i) {
            std::int8_t want;
            if (z == &zero) {
              quantize_row_codes(&x[i], 1, scale[i], dt, range, &want);
            } else {
              want = static_cast<std::int8_t>(std::clamp(
                  std::nearbyint(round_to_float_dtype(x[i] / scale[i], dt)) + (*z)[i], range.lo, range.hi));
            }
            ASSERT_EQ(got.first[i], want) << dtype_name(dt) << " n=" << n << " i=" << i;
            const float residual = base[i] - (static_cast<float>(want) - (*z)[i]) * scale[i];
            ASSERT_EQ(bits_of(got.second[i]), bits_of(residual)) << i;
          }
        }
      }
    }
  }
}

TEST(QuantizeRowCodes, TiesRoundToEven) {
  const float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.5f, 200.0f};
  const std::int8_t expected[] = {0, 2, 2, 0, -2, -2, 126, -128, 127};
  for (const KernelIsa isa : testing::runnable_isas()) {
    ScopedKernelIsa scoped(isa);
    std::int8_t codes[9];
    quantize_row_codes(x, 9, 1.0f, DType::kF32, {-128.0f, 127.0f}, codes);
    for (int i = 0; i < 9; ++i) EXPECT_EQ(codes[i], expected[i]) << kernel_isa_name(isa) << " " << x[i];
  }
}

TEST(CodeErrorSums, PathsAreBitIdentical) {
  for (const DType dt : kDtypes) {
    for (const CodeRange range : kRanges) {
      for (const std::int64_t n : kLengths) {
        const float scale = 0.013f;
        const std::vector<float> w = test_row(n, static_cast<std::uint32_t>(3 * n), scale);
        const std::vector<float> sums = on_both_paths([&] {
          const CodeErrorSums s = code_error_sums(w.data(), n, scale, dt, range);
          return std::vector<float>{s.squared_error, s.wq, s.qq};
        });
        EXPECT_TRUE(std::isfinite(sums[0]) && sums[2] >= 0.0f) << dtype_name(dt) << " n=" << n;
      }
    }
  }
}

TEST(CodeErrorSums, SumsTheCodesOfQuantizeRowCodes) {
  const std::int64_t n = 37;
  const float scale = 0.25f;
  const std::vector<float> w = test_row(n, 11, scale);
  std::vector<std::int8_t> codes(static_cast<std::size_t>(n));
  quantize_row_codes(w.data(), n, scale, DType::kF32, {-128.0f, 127.0f}, codes.data());
  double qq = 0.0;
  for (const std::int8_t q : codes) qq += static_cast<double>(q) * q;
  const CodeErrorSums s = code_error_sums(w.data(), n, scale, DType::kF32, {-128.0f, 127.0f});
  EXPECT_EQ(static_cast<double>(s.qq), qq);  // small integers: exact in float32 whatever the order
}

TEST(QuantizeScaledRowSymmetric, PathsAreBitIdenticalForBothDirections) {
  for (const DType dt : kDtypes) {
    for (const bool divide : {true, false}) {
      for (const std::int64_t n : kLengths) {
        const std::vector<float> src = test_row(n, static_cast<std::uint32_t>(5 * n), 0.01f);
        std::vector<float> sigma = random_floats(static_cast<std::size_t>(n), 9, 0.25f, 4.0f);
        if (n > 2) sigma[1] = 1.0f;
        const auto result = on_both_paths([&] {
          std::vector<float> v(src.size());
          std::vector<std::int8_t> codes(src.size(), 0);
          const float interval = quantize_scaled_row_symmetric(src.data(), sigma.data(), divide, n, dt, v.data(),
                                                               codes.data());
          return std::make_pair(bits_of(interval), codes);
        });
        for (const std::int8_t q : result.second) ASSERT_TRUE(q >= -127 && q <= 127);
      }
    }
  }
}

TEST(QuantizeScaledRowSymmetric, AllZeroRowReturnsZeroIntervalAndLeavesCodes) {
  const std::vector<float> src(20, 0.0f), sigma(20, 1.0f);
  std::vector<float> v(20);
  std::vector<std::int8_t> codes(20, 5);
  EXPECT_EQ(quantize_scaled_row_symmetric(src.data(), sigma.data(), true, 20, DType::kBF16, v.data(), codes.data()),
            0.0f);
  EXPECT_EQ(codes, std::vector<std::int8_t>(20, 5));
}

TEST(DequantizedRowSquareError, PathsAreBitIdentical) {
  for (const DType dt : kDtypes) {
    for (const std::int64_t n : kLengths) {
      const std::vector<std::int32_t> acc = random_ints<std::int32_t>(static_cast<std::size_t>(n), 21, -300000, 300000);
      const std::vector<float> col = random_floats(static_cast<std::size_t>(n), 22, 1e-4f, 1e-2f);
      const std::vector<float> ref = test_row(n, 23, 1.0f);
      const std::vector<std::int32_t> offset = random_ints<std::int32_t>(static_cast<std::size_t>(n), 24, -9000, 9000);
      const double err = on_both_paths([&] {
        return dequantized_row_square_error(acc.data(), offset.data(), col.data(), 3.0e-3f, ref.data(), n, dt);
      });
      EXPECT_TRUE(std::isfinite(err) && err >= 0.0);
      // The offset is taken off the accumulator exactly: the same sum as the difference passed with zero offsets.
      std::vector<std::int32_t> difference(acc.size()), zeros(acc.size(), 0);
      for (std::size_t i = 0; i < acc.size(); ++i) difference[i] = acc[i] - offset[i];
      EXPECT_EQ(err, dequantized_row_square_error(difference.data(), zeros.data(), col.data(), 3.0e-3f, ref.data(),
                                                  n, dt));
    }
  }
}

TEST(ActivationRows, StaticPathsAreBitIdenticalAndFlagNonFiniteRows) {
  for (const std::int64_t n : kLengths) {
    std::vector<float> x = test_row(n, static_cast<std::uint32_t>(7 * n), 0.0625f);
    for (const float offset : {0.0f, -3.0f, 17.0f}) {
      const auto clean = on_both_paths([&] {
        std::vector<std::uint8_t> q(x.size());
        const bool ok = quantize_activation_row_static(x.data(), n, 0.0625f, offset, q.data());
        return std::make_pair(ok, q);
      });
      EXPECT_TRUE(clean.first);
      for (std::int64_t i = 0; i < n; ++i) {
        const float code = std::fmin(std::fmax(std::nearbyint(x[i] / 0.0625f + offset), -128.0f), 127.0f);
        ASSERT_EQ(clean.second[i], static_cast<std::uint8_t>(static_cast<int>(code) + 128)) << n << " " << i;
      }
    }
    for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      std::vector<float> y = x;
      y[static_cast<std::size_t>(n - 1)] = bad;
      const auto flagged = on_both_paths([&] {
        std::vector<std::uint8_t> q(y.size());
        const bool ok = quantize_activation_row_static(y.data(), n, 0.0625f, 1.0f, q.data());
        return std::make_pair(ok, q);
      });
      EXPECT_FALSE(flagged.first);
    }
  }
}

TEST(ActivationRows, DynamicPathsAreBitIdenticalWithZeroAndNonFiniteRows) {
  for (const std::int64_t n : kLengths) {
    const std::vector<float> x = test_row(n, static_cast<std::uint32_t>(11 * n), 0.03f);
    std::vector<float> zero(x.size(), 0.0f), bad = x;
    bad[static_cast<std::size_t>(n / 2)] = -std::numeric_limits<float>::infinity();
    for (const std::vector<float>* row : std::vector<const std::vector<float>*>{&x, &zero, &bad}) {
      const auto result = on_both_paths([&] {
        std::vector<std::uint8_t> q(row->size());
        const float s = quantize_activation_row_dynamic(row->data(), n, q.data());
        return std::make_pair(bits_of(s), q);
      });
      if (row == &zero) {
        EXPECT_EQ(result.first, bits_of(0.0f));
      }
      if (row == &bad) {
        EXPECT_TRUE(std::isnan(std::bit_cast<float>(result.first)));
      }
      if (row != &x) {
        EXPECT_EQ(result.second, std::vector<std::uint8_t>(x.size(), 128));  // codes 0
      }
    }
  }
}

TEST(Dequantize, StaticAndDynamicPathsAreBitIdentical) {
  for (const std::int64_t n : kLengths) {
    const auto size = static_cast<std::size_t>(n);
    const std::vector<std::int32_t> acc = random_ints<std::int32_t>(size, 31, -2000000000, 2000000000);
    const std::vector<std::int32_t> zero_sum = random_ints<std::int32_t>(size, 32, -100000, 100000);
    const std::vector<float> scale = random_floats(size, 33, 1e-6f, 1e-3f);
    std::vector<double> bias(size);
    for (std::size_t j = 0; j < size; ++j) bias[j] = static_cast<double>(zero_sum[j]) * 12345.0 + 0.5;
    const auto as_floats = [&] {
      std::vector<float> y(size);
      std::memcpy(y.data(), acc.data(), size * sizeof(float));
      return y;
    };
    on_both_paths([&] {
      std::vector<float> y = as_floats();
      dequantize_static_row(y.data(), n, bias.data(), scale.data());
      return bits_of_all(y);
    });
    on_both_paths([&] {
      std::vector<float> y = as_floats();
      dequantize_dynamic_row(y.data(), n, zero_sum.data(), 0.37f, scale.data());
      return bits_of_all(y);
    });
  }
}

TEST(QuantRows, RejectsANonFloatDtype) {
  float x = 1.0f;
  std::int8_t q;
  EXPECT_ANY_THROW(quantize_row_codes(&x, 1, 1.0f, DType::kI8, {-128.0f, 127.0f}, &q));
}

}  // namespace
}  // namespace moeslim::kernels
