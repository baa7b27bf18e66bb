// GEMM throughput on this machine: f32 (both methods), bf16 and int8 at a large square size (the "peak" for
// each precision) and at the Qwen3-30B-A3B calibration shapes, with 1 and 2 threads; bf16 and int8 both with
// oneDNN's blocked copy of the weights and with the weights used in place.
//
//   gemm_bench [seconds_per_cell=0.3]
//
// Two threads are only worth it if the vCPUs are real cores; on SMT siblings with OpenMP's default active
// waiting they can be much slower. Run once as is and once with OMP_WAIT_POLICY=passive to see both.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_peak.h"
#include "kernels/threading.h"

namespace {

using namespace moeslim::kernels;

struct Shape {
  const char* what;
  std::int64_t m, n, k;
};

const Shape kShapes[] = {
    {"square (peak)", 2048, 2048, 2048},
    {"expert gate/up", 64, 768, 2048},   {"expert gate/up", 512, 768, 2048},  {"expert gate/up", 2048, 768, 2048},
    {"expert down", 64, 2048, 768},      {"expert down", 512, 2048, 768},     {"expert down", 2048, 2048, 768},
    {"attn q_proj", 64, 4096, 2048},     {"attn q_proj", 512, 4096, 2048},    {"attn q_proj", 2048, 4096, 2048},
};

float pattern(std::int64_t i) { return static_cast<float>((i * 2654435761u) % 2001u) / 1000.0f - 1.0f; }

struct Columns {
  const char* name;
  std::function<double(const Shape&, double)> run;  // returns G(FL)OP/s
};

double gflops(const Shape& s, double t) { return 2.0 * s.m * s.n * s.k / t / 1e9; }

double run_float(const Shape& s, double seconds, GemmPrecision precision, F32GemmMethod method,
                 WeightStorage storage = WeightStorage::kPacked) {
  set_f32_gemm_method(method);
  std::vector<float> x(static_cast<std::size_t>(s.m * s.k)), y(static_cast<std::size_t>(s.m * s.n));
  std::vector<std::uint16_t> w(static_cast<std::size_t>(s.n * s.k));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = pattern(static_cast<std::int64_t>(i));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = moeslim::f32_to_bf16(0.05f * pattern(static_cast<std::int64_t>(i) + 3));
  const PreparedWeight pw = PreparedWeight::from_bf16(w.data(), s.n, s.k, s.k, precision, storage);
  const double t = seconds_per_call([&] { gemm(x.data(), s.m, s.k, pw, y.data(), s.n); }, seconds);
  set_f32_gemm_method(F32GemmMethod::kAuto);
  return gflops(s, t);
}

double run_int8(const Shape& s, double seconds, WeightStorage storage = WeightStorage::kPacked) {
  std::vector<std::uint8_t> x(static_cast<std::size_t>(s.m * s.k));
  std::vector<std::int8_t> w(static_cast<std::size_t>(s.n * s.k));
  std::vector<std::int32_t> acc(static_cast<std::size_t>(s.m * s.n));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>((i * 37u) % 256u);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>(static_cast<int>((i * 101u) % 255u) - 127);
  const PreparedInt8Weight pw = PreparedInt8Weight::from_s8(w.data(), s.n, s.k, s.k, storage);
  const double t = seconds_per_call([&] { gemm_u8s8_s32(x.data(), s.m, s.k, pw, acc.data(), s.n); }, seconds);
  return gflops(s, t);
}

// Causal attention of one sequence with Qwen3-30B-A3B's heads (32 query, 4 KV, head_dim 128): its GEMMs are
// float32, so compare with the "f32 native" column. Useful work counts the causal half only.
void attention_line(std::int64_t tokens, double seconds) {
  const AttentionDims dims{tokens, 32, 4, 128};
  std::vector<float> q(static_cast<std::size_t>(tokens * 32 * 128)), out(q.size());
  std::vector<float> k(static_cast<std::size_t>(tokens * 4 * 128)), v(k.size());
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = pattern(static_cast<std::int64_t>(i));
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = pattern(static_cast<std::int64_t>(i) + 1);
    v[i] = pattern(static_cast<std::int64_t>(i) + 2);
  }
  const double t = seconds_per_call([&] { causal_attention(q.data(), k.data(), v.data(), dims, out.data()); },
                                    seconds);
  const double useful = 2.0 * 2.0 * 32 * 128 * (static_cast<double>(tokens) * (tokens + 1) / 2.0);
  std::printf("causal attention T=%-5lld (32/4 heads x 128): %8.2f ms, %6.0f GFLOP/s useful\n",
              static_cast<long long>(tokens), t * 1e3, useful / t / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.3;
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("CPU: %s\n", describe_cpu().c_str());
  std::printf("f32 method (auto): %s | int8 backend: %s | OMP_WAIT_POLICY=%s | %.2f s per cell\n",
              resolved_f32_gemm_method() == F32GemmMethod::kBf16x3 ? "bf16x3" : "native f32",
              int8_gemm_backend_name(int8_gemm_backend()), policy ? policy : "(unset: active)", seconds);

  const std::vector<Columns> columns = {
      {"f32 native", [](const Shape& s, double t) { return run_float(s, t, GemmPrecision::kF32, F32GemmMethod::kNativeF32); }},
      {"f32 bf16x3", [](const Shape& s, double t) { return run_float(s, t, GemmPrecision::kF32, F32GemmMethod::kBf16x3); }},
      {"bf16", [](const Shape& s, double t) { return run_float(s, t, GemmPrecision::kBF16, F32GemmMethod::kAuto); }},
      {"int8 GOP/s", [](const Shape& s, double t) { return run_int8(s, t); }},
      // The weights used in place (WeightStorage::kBorrowed), as the model's linears use them, against the
      // blocked copies of the two columns before.
      {"bf16 in place", [](const Shape& s, double t) {
         return run_float(s, t, GemmPrecision::kBF16, F32GemmMethod::kAuto, WeightStorage::kBorrowed);
       }},
      {"int8 in place", [](const Shape& s, double t) { return run_int8(s, t, WeightStorage::kBorrowed); }},
  };
  const int thread_counts[] = {1, 2};

  std::printf("\nGFLOP/s (int8: GOP/s), 1T / 2T threads\n");
  std::printf("%-16s %5s %5s %5s", "shape", "M", "N", "K");
  for (const Columns& c : columns) std::printf(" | %15s", c.name);
  std::printf("\n");
  for (const Shape& s : kShapes) {
    std::printf("%-16s %5lld %5lld %5lld", s.what, static_cast<long long>(s.m), static_cast<long long>(s.n),
                static_cast<long long>(s.k));
    for (const Columns& c : columns) {
      double result[2];
      for (int i = 0; i < 2; ++i) {
        set_num_threads(thread_counts[i]);
        result[i] = c.run(s, seconds);
      }
      std::printf(" | %7.0f %7.0f", result[0], result[1]);
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  set_num_threads(1);
  std::printf("\n");
  attention_line(512, seconds);
  attention_line(2048, seconds);
  std::printf("\nmeasure_gemm_peak (1 thread, 0.5 s): f32 %.0f GFLOP/s, bf16 %.0f GFLOP/s, int8 %.0f GOP/s\n",
              measure_gemm_peak(GemmPrecision::kF32), measure_gemm_peak(GemmPrecision::kBF16),
              measure_int8_gemm_peak());
  return 0;
}
