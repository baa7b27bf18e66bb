// GPTQ's work for one Qwen3-30B-A3B expert, timed as the pipeline runs it (one expert per task, one thread by
// default): the Hessian of the gate/up input (500 rows × 2048 columns) and of the down input (× 768), the
// factors of both (prepare_gptq_hessian), and int4 per-channel symmetric GPTQ of gate and up [768, 2048] and
// down [2048, 768]; with oneDNN's f32 GEMM peak measured in the same run, for the fraction of peak.
//
//   gptq_bench [rows=500] [threads=1] [repeats=9] [experts=0]
//
// Times are the minimum and the median over `repeats` runs after a warm-up (first calls create the oneDNN
// primitives). GFLOP/s count the useful flops: rows·n² for a Hessian (its lower triangle), n³/3 for the Cholesky
// factorisation, out·n² for GPTQ's compensation (each column updates the later ones). With experts > 0, the
// whole per-expert work (both Hessians included) also runs for that many experts as kernels::run_tasks tasks over
// the threads, as a layer's experts would.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_peak.h"
#include "kernels/threading.h"
#include "quant/gptq.h"
#include "quant/hessian.h"

namespace {

using namespace moeslim;

struct Timing {
  double min_s = 0.0;
  double median_s = 0.0;
};

Timing time_it(const std::function<void()>& step, int repeats) {
  step();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

// Correlated input rows (a few shared factors plus noise) with a handful of massive channels, as hidden states.
std::vector<float> input_rows(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kLatent = 32;
  std::vector<float> mix(static_cast<std::size_t>(kLatent * cols)), x(static_cast<std::size_t>(rows * cols));
  for (float& m : mix) m = normal(rng) / 6.0f;
  std::vector<float> z(kLatent);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : z) v = normal(rng);
    for (std::int64_t c = 0; c < cols; ++c) {
      float v = 0.3f * normal(rng);
      for (int l = 0; l < kLatent; ++l) {
        v += z[static_cast<std::size_t>(l)] * mix[static_cast<std::size_t>(l * cols + c)];
      }
      x[static_cast<std::size_t>(r * cols + c)] = v * (c % 257 == 0 ? 100.0f : 1.0f);
    }
  }
  return x;
}

Tensor random_weight(std::int64_t out, std::int64_t in, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  Tensor w = Tensor::zeros(DType::kF32, {out, in});
  float* p = w.mutable_data<float>();
  for (std::int64_t i = 0; i < out * in; ++i) p[i] = normal(rng);
  return w;
}

void line(const char* what, const Timing& t, double flops, double peak) {
  const double gflops = flops / t.min_s / 1e9;
  std::printf("%-34s %9.2f %9.2f %9.1f %7.0f %%\n", what, t.min_s * 1e3, t.median_s * 1e3, gflops,
              100.0 * gflops / peak);
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 500;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 9;
  const int experts = argc > 4 ? std::atoi(argv[4]) : 0;
  kernels::set_num_threads(threads);
  constexpr std::int64_t kHidden = 2048, kIntermediate = 768;

  const double peak = kernels::measure_gemm_peak(kernels::GemmPrecision::kF32, 1.0);
  std::printf("%s\n%d thread(s); oneDNN f32 GEMM peak (2048³): %.1f GFLOP/s\n\n", kernels::describe_cpu().c_str(),
              threads, peak);
  std::printf("%-34s %9s %9s %9s %9s\n", "step", "min ms", "median ms", "GFLOP/s", "of peak");

  const std::vector<float> x_in = input_rows(rows, kHidden, 1), x_mid = input_rows(rows, kIntermediate, 2);
  LargeVector<float> h_in, h_mid;
  const Timing hessian_in = time_it([&] {
    quant::HessianAccumulator acc(kHidden);
    acc.add(x_in.data(), rows, kHidden);
    h_in = std::move(acc).hessian();
  }, repeats);
  const Timing hessian_in_bf16 = time_it([&] {
    quant::HessianAccumulator acc(kHidden, kernels::GemmPrecision::kBF16);
    acc.add(x_in.data(), rows, kHidden);
    h_in = std::move(acc).hessian();
  }, repeats);
  const Timing hessian_mid = time_it([&] {
    quant::HessianAccumulator acc(kIntermediate);
    acc.add(x_mid.data(), rows, kIntermediate);
    h_mid = std::move(acc).hessian();
  }, repeats);

  quant::GptqOptions options;  // int4, per channel, symmetric, dampening 0.01
  quant::GptqHessian p_in, p_mid;
  const Timing prepare_in = time_it([&] { p_in = quant::prepare_gptq_hessian(h_in, kHidden, options); }, repeats);
  const Timing prepare_mid =
      time_it([&] { p_mid = quant::prepare_gptq_hessian(h_mid, kIntermediate, options); }, repeats);

  const Tensor gate = random_weight(kIntermediate, kHidden, 3), down = random_weight(kHidden, kIntermediate, 4);
  const Timing gptq_gate = time_it([&] { quant::gptq_quantize(gate, p_in, options); }, repeats);
  const Timing gptq_down = time_it([&] { quant::gptq_quantize(down, p_mid, options); }, repeats);

  const auto n3 = [](double n) { return n * n * n / 3.0; };
  const double r = static_cast<double>(rows), hi = kHidden, mid = kIntermediate;
  line("(a) Hessian 2048 cols", hessian_in, r * hi * hi, peak);
  line("    Hessian 2048 cols, bf16 rows", hessian_in_bf16, r * hi * hi, peak);
  line("    Hessian 768 cols (down input)", hessian_mid, r * mid * mid, peak);
  line("(b) prepare 2048", prepare_in, n3(hi), peak);
  line("(b) prepare 768", prepare_mid, n3(mid), peak);
  line("(c) GPTQ gate/up [768, 2048]", gptq_gate, mid * hi * hi, peak);
  line("(c) GPTQ down [2048, 768]", gptq_down, hi * mid * mid, peak);
  const Timing total{hessian_in.min_s + prepare_in.min_s + prepare_mid.min_s + 2 * gptq_gate.min_s + gptq_down.min_s,
                     hessian_in.median_s + prepare_in.median_s + prepare_mid.median_s + 2 * gptq_gate.median_s +
                         gptq_down.median_s};
  line("a + b(2048) + b(768) + 2c + c", total,
       r * hi * hi + n3(hi) + n3(mid) + 2 * mid * hi * hi + hi * mid * mid, peak);
  if (experts > 0) {
    const Timing layer = time_it([&] {
      kernels::run_tasks(experts, true, [&](std::int64_t, int) {
        quant::HessianAccumulator in(kHidden), mid_acc(kIntermediate);
        in.add(x_in.data(), rows, kHidden);
        mid_acc.add(x_mid.data(), rows, kIntermediate);
        const quant::GptqHessian a = quant::prepare_gptq_hessian(std::move(in).hessian(), kHidden, options);
        const quant::GptqHessian b =
            quant::prepare_gptq_hessian(std::move(mid_acc).hessian(), kIntermediate, options);
        quant::gptq_quantize(gate, a, options);
        quant::gptq_quantize(gate, a, options);  // up_proj: the same shape and Hessian
        quant::gptq_quantize(down, b, options);
      });
    }, std::max(1, repeats / 3));
    std::printf("\n%d experts as tasks on %d thread(s): %.0f ms (median %.0f), %.1f ms per expert\n", experts,
                threads, layer.min_s * 1e3, layer.median_s * 1e3, layer.min_s * 1e3 / experts);
  }
  return 0;
}
