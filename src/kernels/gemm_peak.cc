#include "kernels/gemm_peak.h"

#include <chrono>
#include <functional>
#include <vector>

#include "core/half.h"
#include "kernels/gemm_int8.h"

namespace moeslim::kernels {
namespace {

// Deterministic values of moderate size (no denormals, no cancellation to zero).
float pattern(std::int64_t i) { return static_cast<float>((i * 2654435761u) % 2001u) / 1000.0f - 1.0f; }

}  // namespace

double seconds_per_call(const std::function<void()>& step, double seconds) {
  using clock = std::chrono::steady_clock;
  step();
  const auto start = clock::now();
  std::int64_t calls = 0;
  double elapsed = 0.0;
  do {
    step();
    ++calls;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return elapsed / static_cast<double>(calls);
}

double measure_gemm_peak(GemmPrecision precision, double seconds, std::int64_t size) {
  const auto count = static_cast<std::size_t>(size * size);
  std::vector<float> x(count);
  std::vector<std::uint16_t> w(count);
  std::vector<float> y(count);
  for (std::size_t i = 0; i < count; ++i) {
    x[i] = pattern(static_cast<std::int64_t>(i));
    w[i] = moeslim::f32_to_bf16(0.05f * pattern(static_cast<std::int64_t>(i) + 7));
  }
  const PreparedWeight weight = PreparedWeight::from_bf16(w.data(), size, size, size, precision);
  const double t = seconds_per_call([&] { gemm(x.data(), size, size, weight, y.data(), size); }, seconds);
  return 2.0 * static_cast<double>(size) * static_cast<double>(size) * static_cast<double>(size) / t / 1e9;
}

double measure_int8_gemm_peak(double seconds, std::int64_t size) {
  const auto count = static_cast<std::size_t>(size * size);
  std::vector<std::uint8_t> x(count);
  std::vector<std::int8_t> w(count);
  std::vector<std::int32_t> acc(count);
  for (std::size_t i = 0; i < count; ++i) {
    x[i] = static_cast<std::uint8_t>((i * 37u) % 256u);
    w[i] = static_cast<std::int8_t>(static_cast<int>((i * 101u) % 255u) - 127);
  }
  const PreparedInt8Weight weight = PreparedInt8Weight::from_s8(w.data(), size, size, size);
  const double t = seconds_per_call([&] { gemm_u8s8_s32(x.data(), size, size, weight, acc.data(), size); }, seconds);
  return 2.0 * static_cast<double>(size) * static_cast<double>(size) * static_cast<double>(size) / t / 1e9;
}

}  // namespace moeslim::kernels
