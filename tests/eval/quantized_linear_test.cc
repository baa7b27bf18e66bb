// The integer linears compute exactly the loader arithmetic of msmodelslim-output-format.md §7, checked
// against plain loops: per-element rounding with std::nearbyint, int64 dot products, the dequantisation in
// the spec's order. Results must be bit-identical, on every int8 GEMM backend this CPU can run exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_int8.h"
#include "model/quantized_linear.h"

namespace moeslim::model {
namespace {

Tensor i8_tensor(const std::vector<std::int8_t>& v, std::int64_t rows, std::int64_t cols) {
  Tensor t = Tensor::zeros(DType::kI8, {rows, cols});
  std::memcpy(t.mutable_data<std::int8_t>(), v.data(), v.size());
  return t;
}

Tensor f32_tensor(const std::vector<float>& v) {
  Tensor t = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(v.size())});
  std::memcpy(t.mutable_data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

Tensor i32_tensor(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::zeros(DType::kI32, {static_cast<std::int64_t>(v.size())});
  std::memcpy(t.mutable_data<std::int32_t>(), v.data(), v.size() * sizeof(std::int32_t));
  return t;
}

std::vector<std::int8_t> random_codes(std::mt19937& rng, std::size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<std::int8_t> out(n);
  for (auto& c : out) c = static_cast<std::int8_t>(d(rng));
  return out;
}

std::vector<float> random_floats(std::mt19937& rng, std::size_t n, float sigma) {
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> out(n);
  for (auto& v : out) v = d(rng);
  return out;
}

// The spec's formulas, written the obvious way (round first, then clamp).
std::int32_t static_code(float x, float scale, float offset) {
  const float v = std::nearbyint(x / scale + offset);
  return static_cast<std::int32_t>(std::min(127.0f, std::max(-128.0f, v)));
}

std::int64_t dot(const std::vector<std::int32_t>& xq, const std::vector<std::int8_t>& w, std::int64_t row,
                 std::int64_t k) {
  std::int64_t acc = 0;
  for (std::int64_t i = 0; i < k; ++i) acc += static_cast<std::int64_t>(xq[i]) * w[row * k + i];
  return acc;
}

// y[m, n] of W8A8 static: deq ⊙ (x_q·Wᵀ + quant_bias), the sum exact, then one float product.
std::vector<float> reference_static(const std::vector<float>& x, std::int64_t m, std::int64_t k,
                                    const std::vector<std::int8_t>& w, std::int64_t n, float scale, float offset,
                                    const std::vector<float>& deq, const std::vector<std::int32_t>& qb) {
  std::vector<float> y(static_cast<std::size_t>(m * n));
  std::vector<std::int32_t> xq(static_cast<std::size_t>(k));
  for (std::int64_t r = 0; r < m; ++r) {
    for (std::int64_t i = 0; i < k; ++i) xq[i] = static_code(x[r * k + i], scale, offset);
    for (std::int64_t j = 0; j < n; ++j) {
      y[r * n + j] = static_cast<float>(dot(xq, w, j, k) + qb[j]) * deq[j];
    }
  }
  return y;
}

// y[m, n] of W8A8_DYNAMIC: s_t = max|x_t|/127, x_q = clamp(rne(x/s_t), ±127), (x_q·Wᵀ) ⊙ s_t ⊙ weight_scale.
std::vector<float> reference_dynamic(const std::vector<float>& x, std::int64_t m, std::int64_t k,
                                     const std::vector<std::int8_t>& w, std::int64_t n,
                                     const std::vector<float>& ws) {
  std::vector<float> y(static_cast<std::size_t>(m * n), 0.0f);
  std::vector<std::int32_t> xq(static_cast<std::size_t>(k));
  for (std::int64_t r = 0; r < m; ++r) {
    float amax = 0;
    for (std::int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(x[r * k + i]));
    const float s = amax / 127.0f;
    if (s == 0.0f) continue;  // the all-zero token: y = 0
    for (std::int64_t i = 0; i < k; ++i) {
      xq[i] = static_cast<std::int32_t>(std::min(127.0f, std::max(-127.0f, std::nearbyint(x[r * k + i] / s))));
    }
    for (std::int64_t j = 0; j < n; ++j) y[r * n + j] = static_cast<float>(dot(xq, w, j, k)) * s * ws[j];
  }
  return y;
}

void expect_bit_identical(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && ++mismatches <= 5) {
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

// Every way this CPU can run the linears: int8 GEMM backend (oneDNN only where exact: VNNI/AMX, see
// gemm_int8.h) × moeslim's own quantize/dequantize path (portable, AVX-512). All must agree bit for bit.
struct ExecutionPath {
  kernels::Int8GemmBackend backend;
  kernels::KernelIsa isa;
  std::string name() const {
    return std::string(kernels::int8_gemm_backend_name(backend)) + "/" + kernels::kernel_isa_name(isa);
  }
};

std::vector<ExecutionPath> execution_paths() {
  kernels::set_int8_gemm_backend(kernels::Int8GemmBackend::kAuto);
  std::vector<kernels::Int8GemmBackend> backends = {kernels::Int8GemmBackend::kPortable};
  if (kernels::int8_gemm_backend() == kernels::Int8GemmBackend::kOneDnn) backends.push_back(kernels::Int8GemmBackend::kOneDnn);
  std::vector<kernels::KernelIsa> isas = {kernels::KernelIsa::kPortable};
  if (kernels::best_kernel_isa() == kernels::KernelIsa::kAvx512) isas.push_back(kernels::KernelIsa::kAvx512);
  std::vector<ExecutionPath> out;
  for (const auto b : backends) {
    for (const auto i : isas) out.push_back({b, i});
  }
  return out;
}

void use(const ExecutionPath& path) {
  kernels::set_int8_gemm_backend(path.backend);  // weights prepared after this use it
  kernels::set_kernel_isa(path.isa);
}

class QuantizedLinearTest : public ::testing::Test {
 protected:
  void TearDown() override {
    kernels::set_int8_gemm_backend(kernels::Int8GemmBackend::kAuto);
    kernels::set_kernel_isa(kernels::best_kernel_isa());
  }
};

TEST_F(QuantizedLinearTest, W8A8StaticMatchesIntegerReference) {
  std::mt19937 rng(7);
  const std::int64_t k = 300, n = 37;
  const std::vector<std::int8_t> w = random_codes(rng, k * n, -127, 127);
  std::vector<float> deq(n);
  std::vector<std::int32_t> qb(n);
  for (std::int64_t j = 0; j < n; ++j) {
    deq[j] = 1e-4f * static_cast<float>(1 + j % 5);
    qb[j] = static_cast<std::int32_t>((j * 7919) % 20001) - 10000;  // both signs
  }
  const float scale = 0.0173f, offset = -17.0f;  // a negative zero point: the range leans positive
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    SCOPED_TRACE(path.name());
    const auto linear = make_w8a8_static_linear(i8_tensor(w, n, k), scale, offset, f32_tensor(deq), i32_tensor(qb));
    EXPECT_EQ(linear->kind(), "w8a8");
    EXPECT_EQ(linear->in_features(), k);
    EXPECT_EQ(linear->out_features(), n);
    for (const std::int64_t m : {1, 7, 64, 300}) {
      SCOPED_TRACE("rows " + std::to_string(m));
      std::vector<float> x = random_floats(rng, m * k, 1.0f);
      x[0] = 50.0f;   // clamps at 127
      x[1] = -50.0f;  // clamps at -128
      std::vector<float> y(m * n);
      linear->forward(x.data(), m, y.data());
      expect_bit_identical(y, reference_static(x, m, k, w, n, scale, offset, deq, qb));
    }
  }
}

// An identity weight with deq 1 and no bias returns the activation codes themselves. 40 columns: both the
// 16-wide and the tail parts of the vector code see the special values.
std::vector<std::int8_t> identity_codes(std::int64_t k) {
  std::vector<std::int8_t> eye(static_cast<std::size_t>(k * k), 0);
  for (std::int64_t i = 0; i < k; ++i) eye[i * k + i] = 1;
  return eye;
}

TEST_F(QuantizedLinearTest, W8A8StaticRoundsHalfToEvenAfterAddingTheOffsetAndClamps) {
  const std::int64_t k = 40;
  // x/0.25 − 3: −2.5, −1.5, −0.5, 0.5, 1.5, 401, −397, −3
  const std::vector<float> pattern = {0.125f, 0.375f, 0.625f, 0.875f, 1.125f, 101.0f, -98.5f, 0.0f};
  const std::vector<float> codes = {-2, -2, 0, 0, 2, 127, -128, -3};
  std::vector<float> x(k), want(k);
  for (std::int64_t i = 0; i < k; ++i) x[i] = pattern[i % 8], want[i] = codes[i % 8];
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    SCOPED_TRACE(path.name());
    const auto linear = make_w8a8_static_linear(i8_tensor(identity_codes(k), k, k), 0.25f, -3.0f,
                                                f32_tensor(std::vector<float>(k, 1)),
                                                i32_tensor(std::vector<std::int32_t>(k, 0)));
    std::vector<float> y(k);
    linear->forward(x.data(), 1, y.data());
    EXPECT_EQ(y, want);
  }
}

TEST_F(QuantizedLinearTest, W8A8DynamicMatchesPerTokenReferenceIncludingAnAllZeroToken) {
  std::mt19937 rng(11);
  const std::int64_t k = 257, n = 45;
  const std::vector<std::int8_t> w = random_codes(rng, k * n, -128, 127);
  std::vector<float> ws(n);
  for (std::int64_t j = 0; j < n; ++j) ws[j] = 0.002f + 0.0003f * static_cast<float>(j);
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    SCOPED_TRACE(path.name());
    const auto linear = make_w8a8_dynamic_linear(i8_tensor(w, n, k), f32_tensor(ws));
    EXPECT_EQ(linear->kind(), "w8a8_dynamic");
    for (const std::int64_t m : {1, 5, 64, 300}) {
      SCOPED_TRACE("rows " + std::to_string(m));
      std::vector<float> x = random_floats(rng, m * k, 0.5f);
      for (std::int64_t i = 0; i < k; ++i) x[i] = 0.0f;  // token 0: all zero
      if (m > 2) {
        for (std::int64_t i = 0; i < k; ++i) x[k + i] = i == 3 ? -1e-3f : 0.0f;  // one nonzero value
        for (std::int64_t i = 0; i < k; ++i) x[2 * k + i] *= 1e4f;               // a large-valued token
      }
      std::vector<float> y(m * n, 123.0f);
      linear->forward(x.data(), m, y.data());
      expect_bit_identical(y, reference_dynamic(x, m, k, w, n, ws));
      for (std::int64_t j = 0; j < n; ++j) ASSERT_EQ(y[j], 0.0f) << "all-zero token, column " << j;
    }
  }
}

TEST_F(QuantizedLinearTest, W8A8DynamicRoundsHalfToEvenAndClampsToPlusMinus127) {
  const std::int64_t k = 40;
  // max |x| = 127 → s_t = 1; codes are rne(x).
  const std::vector<float> pattern = {127.0f, 0.5f, 1.5f, -2.5f, -127.0f, 3.49f, -0.5f, 2.5f};
  const std::vector<float> codes = {127, 0, 2, -2, -127, 3, 0, 2};
  std::vector<float> x(k), want(k);
  for (std::int64_t i = 0; i < k; ++i) x[i] = pattern[i % 8], want[i] = codes[i % 8];
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    SCOPED_TRACE(path.name());
    const auto linear = make_w8a8_dynamic_linear(i8_tensor(identity_codes(k), k, k), f32_tensor(std::vector<float>(k, 1)));
    std::vector<float> y(k);
    linear->forward(x.data(), 1, y.data());
    EXPECT_EQ(y, want);
  }
}

TEST_F(QuantizedLinearTest, NonFiniteTokensGiveNanRowsAndLeaveOtherRowsAlone) {
  std::mt19937 rng(13);
  const std::int64_t k = 20, n = 18;
  const std::vector<std::int8_t> w = random_codes(rng, n * k, -127, 127);
  const std::vector<float> ws(n, 0.1f);
  std::vector<float> x = random_floats(rng, 4 * k, 1.0f);
  x[k + 17] = std::nanf("");                                  // token 1: a NaN in the vector tail
  x[2 * k + 3] = -std::numeric_limits<float>::infinity();     // token 2: an infinity
  std::fill(x.begin() + 3 * k, x.end(), 0.0f);                // token 3: zeros
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    const auto dynamic = make_w8a8_dynamic_linear(i8_tensor(w, n, k), f32_tensor(ws));
    const auto stat = make_w8a8_static_linear(i8_tensor(w, n, k), 0.1f, 0.0f, f32_tensor(ws),
                                              i32_tensor(std::vector<std::int32_t>(n, 0)));
    for (const Linear* linear : {dynamic.get(), stat.get()}) {
      SCOPED_TRACE(path.name() + " " + linear->kind());
      std::vector<float> y(4 * n);
      linear->forward(x.data(), 4, y.data());
      for (std::int64_t j = 0; j < n; ++j) {
        EXPECT_TRUE(std::isfinite(y[j]));
        EXPECT_TRUE(std::isnan(y[n + j]));
        EXPECT_TRUE(std::isnan(y[2 * n + j]));
        EXPECT_EQ(y[3 * n + j], 0.0f);
      }
    }
  }
}

// msModelSlim's packing (format §5), written independently of the runtime.
Tensor pack_int4_rows(const std::vector<std::int8_t>& q, std::int64_t rows, std::int64_t cols) {
  std::vector<std::int8_t> packed(static_cast<std::size_t>(rows / 2 * cols));
  for (std::int64_t r = 0; r < rows / 2; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const int lo = q[(2 * r) * cols + c], hi = q[(2 * r + 1) * cols + c];
      packed[r * cols + c] = static_cast<std::int8_t>(static_cast<std::uint8_t>((hi << 4) | (lo & 0xF)));
    }
  }
  return i8_tensor(packed, rows / 2, cols);
}

TEST(Int4Packing, EvenRowsComeFromLowNibblesOddRowsFromHighNibbles) {
  const std::vector<std::int8_t> bytes = {0x78, static_cast<std::int8_t>(0xFF), 0x0F, static_cast<std::int8_t>(0x80)};
  const Tensor q = unpack_int4_rows(i8_tensor(bytes, 1, 4));
  ASSERT_EQ(q.shape(), (Shape{2, 4}));
  const std::int8_t* p = q.data<std::int8_t>();
  EXPECT_EQ(std::vector<int>(p, p + 4), (std::vector<int>{-8, -1, -1, 0}));  // row 0: low nibbles
  EXPECT_EQ(std::vector<int>(p + 4, p + 8), (std::vector<int>{7, -1, 0, -8}));  // row 1: high nibbles
}

TEST(Int4Packing, PackThenUnpackRoundTripsEveryCode) {
  std::mt19937 rng(3);
  const std::int64_t rows = 10, cols = 33;
  std::vector<std::int8_t> q = random_codes(rng, rows * cols, -8, 7);
  for (int v = -8; v <= 7; ++v) q[v + 8] = static_cast<std::int8_t>(v);  // every code, in even and odd rows
  for (int v = -8; v <= 7; ++v) q[cols + v + 8] = static_cast<std::int8_t>(-1 - v);
  const Tensor back = unpack_int4_rows(pack_int4_rows(q, rows, cols));
  ASSERT_EQ(back.shape(), (Shape{rows, cols}));
  EXPECT_EQ(std::vector<std::int8_t>(back.data<std::int8_t>(), back.data<std::int8_t>() + rows * cols), q);
}

TEST_F(QuantizedLinearTest, W4A8EqualsW8A8DynamicOnTheUnpackedCodes) {
  std::mt19937 rng(5);
  const std::int64_t k = 96, n = 18, m = 9;
  const std::vector<std::int8_t> q = random_codes(rng, n * k, -8, 7);
  std::vector<float> ws(n);
  for (std::int64_t j = 0; j < n; ++j) ws[j] = 0.01f * static_cast<float>(j + 1);
  const std::vector<float> x = random_floats(rng, m * k, 1.0f);
  for (const ExecutionPath& path : execution_paths()) {
    use(path);
    SCOPED_TRACE(path.name());
    const auto w4 = make_w4a8_dynamic_linear(pack_int4_rows(q, n, k), f32_tensor(ws));
    EXPECT_EQ(w4->kind(), "w4a8_dynamic");
    EXPECT_EQ(w4->out_features(), n);
    std::vector<float> y(m * n);
    w4->forward(x.data(), m, y.data());
    expect_bit_identical(y, reference_dynamic(x, m, k, q, n, ws));
  }
}

TEST_F(QuantizedLinearTest, DynamicBiasIsAddedAfterDequantisation) {
  const std::int64_t k = 2, n = 2;
  const auto linear = make_w8a8_dynamic_linear(i8_tensor({1, 0, 0, 1}, n, k), f32_tensor({1, 1}), f32_tensor({0.5f, -2}));
  const std::vector<float> x = {127, -127};
  std::vector<float> y(n);
  linear->forward(x.data(), 1, y.data());
  EXPECT_EQ(y, (std::vector<float>{127.5f, -129.0f}));
}

TEST_F(QuantizedLinearTest, RejectsInconsistentTensors) {
  const Tensor w = i8_tensor(std::vector<std::int8_t>(12, 1), 3, 4);
  const auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of([&] { make_w8a8_dynamic_linear(w, f32_tensor({1, 1})); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { make_w8a8_dynamic_linear(w.to_f32(), f32_tensor({1, 1, 1})); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { make_w8a8_static_linear(w, 0.0f, 0.0f, f32_tensor({1, 1, 1}), i32_tensor({0, 0, 0})); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { make_w8a8_static_linear(w, 1.0f, 0.0f, f32_tensor({1, 1, 1}), f32_tensor({0, 0, 0})); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { unpack_int4_rows(w.to_f32()); }), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeslim::model
