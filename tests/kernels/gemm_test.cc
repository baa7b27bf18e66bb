#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "kernels/dnnl_matmul.h"
#include "kernels/gemm_reference.h"
#include "kernels/threading.h"
#include "kernel_test_util.h"

namespace moeslim::kernels {
namespace {

using testing::random_bf16;
using testing::random_floats;
using testing::rel_l2;

struct Shape {
  std::int64_t m, n, k;
};

// Odd shapes: M from a single token up to a block, N and K not multiples of 16.
const Shape kShapes[] = {{1, 37, 53}, {3, 100, 129}, {17, 257, 300}, {64, 61, 1031}, {64, 130, 77}};

// Unit roundoff of float32 and bf16 (round to nearest): the largest relative error of one rounding.
constexpr double kF32Unit = 0x1p-24;
constexpr double kBf16Unit = 0x1p-9;

struct Problem {
  Shape s;
  std::int64_t ldx, ldw, ldy;
  std::vector<float> x;
  std::vector<std::uint16_t> w;
  std::vector<double> ref;      // X·Wᵀ in double, [m, n]
  std::vector<double> abs_ref;  // |X|·|W|ᵀ, for element-wise error bounds

  Problem(Shape shape, std::uint32_t seed, std::int64_t pad = 0)
      : s(shape), ldx(shape.k + pad), ldw(shape.k + 2 * pad), ldy(shape.n + pad) {
    x = random_floats(static_cast<std::size_t>(s.m * ldx), seed);
    w = random_bf16(static_cast<std::size_t>(s.n * ldw), seed + 1);
    ref.resize(static_cast<std::size_t>(s.m * s.n));
    abs_ref.resize(ref.size());
    for (std::int64_t r = 0; r < s.m; ++r) {
      for (std::int64_t c = 0; c < s.n; ++c) {
        double sum = 0, abs_sum = 0;
        for (std::int64_t i = 0; i < s.k; ++i) {
          const double p = static_cast<double>(x[r * ldx + i]) * bf16_to_f32(w[c * ldw + i]);
          sum += p;
          abs_sum += std::fabs(p);
        }
        ref[r * s.n + c] = sum;
        abs_ref[r * s.n + c] = abs_sum;
      }
    }
  }

  std::vector<float> run(GemmPrecision precision, WeightStorage storage = WeightStorage::kPacked) const {
    std::vector<float> y(static_cast<std::size_t>(s.m * ldy), -7.0f);
    const PreparedWeight pw = PreparedWeight::from_bf16(w.data(), s.n, s.k, ldw, precision, storage);
    gemm(x.data(), s.m, ldx, pw, y.data(), ldy);
    return y;
  }

  double rel_error(const std::vector<float>& y) const { return rel_l2(y.data(), ldy, ref.data(), s.n, s.m, s.n); }

  // Largest |y − ref| / (unit·Σ|x·w|) over the elements: how many unit roundoffs of error per element,
  // relative to the scale at which the rounding errors of a dot product live.
  double worst_error_in_units(const std::vector<float>& y, double unit) const {
    double worst = 0;
    for (std::int64_t r = 0; r < s.m; ++r) {
      for (std::int64_t c = 0; c < s.n; ++c) {
        const double e = std::fabs(y[r * ldy + c] - ref[r * s.n + c]) / (unit * abs_ref[r * s.n + c]);
        worst = std::max(worst, e);
      }
    }
    return worst;
  }
};

class GemmF32Methods : public ::testing::TestWithParam<F32GemmMethod> {};

TEST_P(GemmF32Methods, MatchesDoubleReferenceOnOddShapes) {
  testing::ScopedF32Method method(GetParam());
  std::uint32_t seed = 10;
  for (const Shape& s : kShapes) {
    const Problem p(s, seed++);
    const std::vector<float> y = p.run(GemmPrecision::kF32);
    EXPECT_LE(p.rel_error(y), 1e-5) << s.m << "x" << s.n << "x" << s.k;
    // Float32 dot products: error ≤ ~K·u·Σ|x·w| in the worst case, ~√K·u typically; well under K here.
    EXPECT_LE(p.worst_error_in_units(y, kF32Unit), static_cast<double>(s.k)) << s.m << "x" << s.n << "x" << s.k;
  }
}

TEST_P(GemmF32Methods, StridedOperandsAndBorrowedWeights) {
  testing::ScopedF32Method method(GetParam());
  const Problem p({17, 45, 70}, 99, /*pad=*/5);
  const std::vector<float> packed = p.run(GemmPrecision::kF32, WeightStorage::kPacked);
  const std::vector<float> borrowed = p.run(GemmPrecision::kF32, WeightStorage::kBorrowed);
  EXPECT_LE(p.rel_error(packed), 1e-5);
  EXPECT_LE(p.rel_error(borrowed), 1e-5);
  // Columns beyond n in the output rows are untouched.
  for (std::int64_t r = 0; r < p.s.m; ++r) {
    for (std::int64_t c = p.s.n; c < p.ldy; ++c) EXPECT_EQ(packed[r * p.ldy + c], -7.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmF32Methods,
                         ::testing::Values(F32GemmMethod::kNativeF32, F32GemmMethod::kBf16x3),
                         [](const auto& info) {
                           return std::string(info.param == F32GemmMethod::kNativeF32 ? "NativeF32" : "Bf16x3");
                         });

TEST(Gemm, AutoMethodPicksBf16x3ExactlyWhenOneDnnUsesAmx) {
  EXPECT_EQ(resolved_f32_gemm_method() == F32GemmMethod::kBf16x3, onednn_uses_amx());
  const std::vector<std::uint16_t> w = random_bf16(16 * 16, 1);
  const PreparedWeight pw = PreparedWeight::from_bf16(w.data(), 16, 16, 16, GemmPrecision::kF32);
  EXPECT_STREQ(pw.method_name(), onednn_uses_amx() ? "bf16x3" : "f32");
}

// kBF16 rounds each activation to bf16 (relative error ≤ 2^-9), then accumulates in float32. So its result
// must be (a) within 2^-9·Σ|x·w| (+ float32 accumulation) of the exact product, element by element, and
// (b) as exact as a float32 GEMM against the product of the *rounded* activations.
TEST(Gemm, Bf16PrecisionIsExactGemmOfRoundedActivations) {
  std::uint32_t seed = 40;
  for (const Shape& s : kShapes) {
    const Problem p(s, seed++);
    for (WeightStorage storage : {WeightStorage::kPacked, WeightStorage::kBorrowed}) {
      const std::vector<float> y = p.run(GemmPrecision::kBF16, storage);
      EXPECT_LE(p.worst_error_in_units(y, kBf16Unit), 1.0 + static_cast<double>(s.k) * 0x1p-15);
      EXPECT_LE(p.rel_error(y), 4e-3);  // measured ≈1.5e-3 on uniform data (≈ 2^-9/√3)

      std::vector<float> x_rounded(p.x.size());
      for (std::size_t i = 0; i < p.x.size(); ++i) x_rounded[i] = round_to_bf16(p.x[i]);
      std::vector<float> ref_rounded(static_cast<std::size_t>(s.m * s.n));
      reference_gemm(x_rounded.data(), s.m, s.k, p.ldx, p.w.data(), s.n, p.ldw, ref_rounded.data(), s.n);
      EXPECT_LE(rel_l2(y.data(), p.ldy, ref_rounded.data(), s.n, s.m, s.n), 1e-5);
    }
  }
}

// CPUs whose oneDNN has no bf16 matmul (AVX2-only) run kBF16 as a float32 GEMM on bf16-rounded activations:
// the same numbers up to accumulation order. Forced here with the test override.
TEST(Gemm, Bf16PrecisionWithoutOneDnnBf16) {
  detail::set_bf16_matmul_disabled_for_testing(true);
  const Problem p({17, 45, 300}, 61, /*pad=*/2);
  const PreparedWeight bf16 = PreparedWeight::from_bf16(p.w.data(), p.s.n, p.s.k, p.ldw, GemmPrecision::kBF16,
                                                        WeightStorage::kBorrowed);
  const PreparedWeight f32 = PreparedWeight::from_bf16(p.w.data(), p.s.n, p.s.k, p.ldw, GemmPrecision::kF32);
  EXPECT_STREQ(bf16.method_name(), "bf16-on-f32");
  EXPECT_STREQ(f32.method_name(), "f32");
  EXPECT_EQ(resolved_f32_gemm_method(), F32GemmMethod::kNativeF32);
  std::vector<float> y(static_cast<std::size_t>(p.s.m * p.ldy));
  gemm(p.x.data(), p.s.m, p.ldx, bf16, y.data(), p.ldy);
  std::vector<float> x_rounded(p.x.size());
  for (std::size_t i = 0; i < p.x.size(); ++i) x_rounded[i] = round_to_bf16(p.x[i]);
  std::vector<float> ref_rounded(static_cast<std::size_t>(p.s.m * p.s.n));
  reference_gemm(x_rounded.data(), p.s.m, p.s.k, p.ldx, p.w.data(), p.s.n, p.ldw, ref_rounded.data(), p.s.n);
  EXPECT_LE(rel_l2(y.data(), p.ldy, ref_rounded.data(), p.s.n, p.s.m, p.s.n), 1e-6);
  gemm(p.x.data(), p.s.m, p.ldx, f32, y.data(), p.ldy);
  EXPECT_LE(p.rel_error(y), 1e-5);
  detail::set_bf16_matmul_disabled_for_testing(false);
}

TEST(Gemm, ManyRowsRunInChunksOnTheBf16Paths) {
  // K = 4099: the bf16 paths convert 511 rows per step, so 1100 rows take three steps with two shapes.
  for (F32GemmMethod method : {F32GemmMethod::kBf16x3, F32GemmMethod::kNativeF32}) {
    testing::ScopedF32Method scoped(method);
    const Problem p({1100, 19, 4099}, 7);
    EXPECT_LE(p.rel_error(p.run(GemmPrecision::kF32)), 1e-5);
    EXPECT_LE(p.rel_error(p.run(GemmPrecision::kBF16)), 4e-3);
  }
}

TEST(Gemm, Float32WeightsFromF32) {
  const Shape s{9, 33, 65};
  const std::vector<float> x = random_floats(static_cast<std::size_t>(s.m * s.k), 3);
  const std::vector<float> w = random_floats(static_cast<std::size_t>(s.n * s.k), 4, -0.2f, 0.2f);
  std::vector<float> ref(static_cast<std::size_t>(s.m * s.n)), y(ref.size());
  reference_gemm(x.data(), s.m, s.k, s.k, w.data(), s.n, s.k, ref.data(), s.n);
  gemm(x.data(), s.m, s.k, PreparedWeight::from_f32(w.data(), s.n, s.k, s.k, GemmPrecision::kF32), y.data(), s.n);
  EXPECT_LE(rel_l2(y.data(), s.n, ref.data(), s.n, s.m, s.n), 1e-6);

  // kBF16 rounds both operands to bf16: equal to the f32 reference on rounded inputs.
  std::vector<float> xr(x.size()), wr(w.size()), ref_rounded(ref.size());
  for (std::size_t i = 0; i < x.size(); ++i) xr[i] = round_to_bf16(x[i]);
  for (std::size_t i = 0; i < w.size(); ++i) wr[i] = round_to_bf16(w[i]);
  reference_gemm(xr.data(), s.m, s.k, s.k, wr.data(), s.n, s.k, ref_rounded.data(), s.n);
  gemm(x.data(), s.m, s.k, PreparedWeight::from_f32(w.data(), s.n, s.k, s.k, GemmPrecision::kBF16), y.data(), s.n);
  EXPECT_LE(rel_l2(y.data(), s.n, ref_rounded.data(), s.n, s.m, s.n), 1e-5);
}

TEST(Gemm, OneShotOnBorrowedBf16Weight) {
  const Problem p({3, 50, 90}, 77, /*pad=*/3);
  for (GemmPrecision precision : {GemmPrecision::kF32, GemmPrecision::kBF16}) {
    std::vector<float> y(static_cast<std::size_t>(p.s.m * p.ldy));
    gemm_bf16_weight(p.x.data(), p.s.m, p.s.k, p.ldx, p.w.data(), p.s.n, p.ldw, y.data(), p.ldy, precision);
    EXPECT_LE(p.rel_error(y), precision == GemmPrecision::kF32 ? 1e-5 : 4e-3);
  }
}

TEST(Gemm, FromTensorKeepsABorrowedViewAlive) {
  const Shape s{4, 24, 40};
  const Problem p(s, 31);
  std::shared_ptr<std::vector<std::uint16_t>> storage = std::make_shared<std::vector<std::uint16_t>>(p.w);
  std::weak_ptr<std::vector<std::uint16_t>> watch = storage;
  PreparedWeight pw;
  {
    const Tensor view = Tensor::view(DType::kBF16, {s.n, s.k}, storage->data(), storage);
    pw = PreparedWeight::from_tensor(view, GemmPrecision::kBF16, WeightStorage::kBorrowed);
    storage.reset();
  }
  // Borrowed wherever oneDNN has bf16 matmul; without it kBF16 needs a float32 copy and holds no view.
  const bool borrowed = detail::onednn_has_bf16_matmul();
  EXPECT_EQ(pw.owned_bytes() == 0, borrowed);
  EXPECT_EQ(watch.expired(), !borrowed);  // a borrowing weight holds the view, and so the memory
  std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
  gemm(p.x.data(), s.m, p.ldx, pw, y.data(), s.n);
  EXPECT_LE(rel_l2(y.data(), s.n, p.ref.data(), s.n, s.m, s.n), 4e-3);
  pw = PreparedWeight();
  EXPECT_TRUE(watch.expired());

  const Tensor f32 = Tensor::zeros(DType::kF32, {3, 5});
  EXPECT_EQ(PreparedWeight::from_tensor(f32, GemmPrecision::kF32).n(), 3);
  EXPECT_THROW(PreparedWeight::from_tensor(Tensor::zeros(DType::kF16, {3, 5}), GemmPrecision::kF32), Error);
  EXPECT_THROW(PreparedWeight::from_tensor(Tensor::zeros(DType::kBF16, {15}), GemmPrecision::kF32), Error);
}

// Each distinct M is a primitive with its own JIT code (40–170 KB), so M is bucketed (row_blocks.h): tails
// pad to a multiple of 16, bulk to multiples of 64. Any number of distinct M costs at most 12 primitives
// per weight shape (twice that for bf16x3, which also has an accumulating variant).
TEST(Gemm, PrimitivesAreReusedAndBoundedWhateverTheRowCount) {
  const Shape s{5, 41, 83};
  const Problem p(s, 5);
  const PreparedWeight pw = PreparedWeight::from_bf16(p.w.data(), s.n, s.k, p.ldw, GemmPrecision::kF32);
  const std::int64_t max_m = 300;
  std::vector<float> x = random_floats(static_cast<std::size_t>(max_m * p.ldx), 6);
  std::vector<float> y(static_cast<std::size_t>(max_m * p.ldy));
  gemm(x.data(), 5, p.ldx, pw, y.data(), p.ldy);  // may create
  const GemmCacheStats warm = gemm_cache_stats();
  for (std::int64_t m : {5, 5, 6, 11, 16}) gemm(x.data(), m, p.ldx, pw, y.data(), p.ldy);  // all run at M = 16
  const GemmCacheStats now = gemm_cache_stats();
  EXPECT_EQ(now.misses, warm.misses);
  EXPECT_GT(now.hits, warm.hits);
  gemm(x.data(), 17, p.ldx, pw, y.data(), p.ldy);  // M = 32: new
  EXPECT_GT(gemm_cache_stats().misses, now.misses);

  const std::uint64_t before = gemm_cache_stats().misses;
  for (std::int64_t m = 1; m <= max_m; ++m) gemm(x.data(), m, p.ldx, pw, y.data(), p.ldy);
  EXPECT_LE(gemm_cache_stats().misses - before, 2u * 12u);
  // And the bucketed calls are still right (the last one, M = 300 = 256 + 44 padded to 48).
  std::vector<float> ref(static_cast<std::size_t>(max_m * s.n));
  reference_gemm(x.data(), max_m, s.k, p.ldx, p.w.data(), s.n, p.ldw, ref.data(), s.n);
  EXPECT_LE(rel_l2(y.data(), p.ldy, ref.data(), s.n, max_m, s.n), 1e-5);
}

// Experts run their GEMMs on several threads at once (threading.h run_tasks). Each call must give exactly
// what it gives alone: nothing shared between concurrent calls (oneDNN's scratchpad included) may leak.
TEST(Gemm, ConcurrentCallsGiveTheirSerialResults) {
  struct Case {
    Shape s;
    GemmPrecision precision;
    PreparedWeight w;
    std::vector<float> x, alone;
  };
  std::vector<Case> cases;
  std::uint32_t seed = 40;
  for (const Shape s : {Shape{37, 768, 2048}, Shape{64, 2048, 768}, Shape{5, 384, 1024}, Shape{1, 128, 256},
                        Shape{12, 128, 256}, Shape{33, 256, 128}, Shape{70, 256, 128}}) {
    for (GemmPrecision p : {GemmPrecision::kBF16, GemmPrecision::kF32}) {
      Case c{s, p, {}, random_floats(static_cast<std::size_t>(s.m * s.k), ++seed), {}};
      const std::vector<std::uint16_t> w = random_bf16(static_cast<std::size_t>(s.n * s.k), ++seed);
      c.w = PreparedWeight::from_bf16(w.data(), s.n, s.k, s.k, p);
      cases.push_back(std::move(c));
    }
  }
  for (Case& c : cases) {
    c.alone.assign(static_cast<std::size_t>(c.s.m * c.s.n), 0.0f);
    SerialKernelsScope serial;
    gemm(c.x.data(), c.s.m, c.s.k, c.w, c.alone.data(), c.s.n);
  }
  // Neighbouring tasks (which run at the same time) share a case, so one primitive runs on two threads at
  // once; the cache starts empty, so primitives are also created concurrently.
  detail::clear_matmul_cache();
  set_num_threads(2);
  constexpr std::size_t kRounds = 6;
  std::vector<std::vector<float>> got(cases.size() * kRounds);
  run_tasks(static_cast<std::int64_t>(got.size()), true, [&](std::int64_t task, int) {
    const Case& c = cases[static_cast<std::size_t>(task) / kRounds];
    std::vector<float>& y = got[static_cast<std::size_t>(task)];
    y.assign(static_cast<std::size_t>(c.s.m * c.s.n), 0.0f);
    gemm(c.x.data(), c.s.m, c.s.k, c.w, y.data(), c.s.n);
  });
  set_num_threads(1);
  for (std::size_t t = 0; t < got.size(); ++t) {
    const Case& c = cases[t / kRounds];
    ASSERT_EQ(got[t], c.alone) << c.s.m << "x" << c.s.n << "x" << c.s.k << " " << gemm_precision_name(c.precision);
  }
}

TEST(Gemm, ZeroRowsIsANoOpAndBadArgumentsThrow) {
  const std::vector<std::uint16_t> w = random_bf16(8 * 4, 1);
  const PreparedWeight pw = PreparedWeight::from_bf16(w.data(), 8, 4, 4, GemmPrecision::kF32);
  EXPECT_EQ(pw.n(), 8);
  EXPECT_EQ(pw.k(), 4);
  gemm(nullptr, 0, 4, pw, nullptr, 8);
  std::vector<float> x(16), y(32);
  EXPECT_THROW(gemm(x.data(), 2, 3, pw, y.data(), 8), Error);  // ldx < k
  EXPECT_THROW(gemm(x.data(), 2, 4, pw, y.data(), 7), Error);  // ldy < n
  EXPECT_THROW(gemm(x.data(), 2, 4, PreparedWeight(), y.data(), 8), Error);
  EXPECT_THROW(PreparedWeight::from_bf16(w.data(), 8, 4, 3, GemmPrecision::kF32), Error);
}

}  // namespace
}  // namespace moeslim::kernels
