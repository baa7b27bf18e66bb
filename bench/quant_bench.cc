// Quantization benchmark: `moeslim quant` with a recipe (default the W8A8 script's: m4, the bundled
// anti/calibration prompts, batch 4; --recipe configs/qwen3_moe/qwen3-30b-w4a8.yaml for W4A8) on a
// checkpoint, timed per phase, with the GEMM peaks of this machine measured in the same run (bf16 for the float
// passes, int8 for the calibration pass and the α/β search) and the peak RSS, overall and per phase. Projects
// the time for a full-depth model from the per-layer cost. Usage:
//   quant_bench --model DIR [--recipe FILE] [--search-rows N] [--expert-group N] [--project-layers 48]
//               [--precision bf16|f32]
//               [--threads N (default: all usable CPUs)] [--out DIR]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/cpu_budget.h"
#include "core/process_memory.h"
#include "core/profiler.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_peak.h"
#include "kernels/threading.h"
#include "model/config.h"
#include "pipeline/quant_pipeline.h"
#include "recipe/recipe.h"

using namespace moeslim;

namespace {

struct Args {
  std::string model;
  std::string out;
  std::string precision = "bf16";
  std::string recipe = std::string(MOESLIM_SOURCE_DIR) + "/configs/qwen3_moe/qwen3-moe-w8a8.yaml";
  std::int64_t search_rows = 0;
  std::int64_t expert_group = 0;  // 0: the pipeline's default
  std::int64_t project_layers = 0;  // 0: the model's own depth
  int threads = usable_cpus();  // as the commands: every CPU this process may use
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, "missing value", "", k);
      return argv[++i];
    };
    if (k == "--model") a.model = value();
    else if (k == "--out") a.out = value();
    else if (k == "--precision") a.precision = value();
    else if (k == "--recipe") a.recipe = value();
    else if (k == "--search-rows") a.search_rows = std::stoll(value());
    else if (k == "--expert-group") a.expert_group = std::stoll(value());
    else if (k == "--project-layers") a.project_layers = std::stoll(value());
    else if (k == "--threads") a.threads = std::stoi(value());
    else throw Error(ErrorCode::kInvalidArgument, "unknown option", "", k);
  }
  if (a.model.empty()) throw Error(ErrorCode::kInvalidArgument, "required", "", "--model");
  if (a.out.empty()) a.out = a.model + "-w8a8";
  return a;
}

double peak_rss_gib() { return static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0 * 1024.0); }
double gib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

// The process's RSS every 10 ms while it lives, so each phase's peak can be read off the phase spans the run
// records (a phase shorter than the interval may miss its peak; the run's own peak is getrusage's).
class RssSampler {
 public:
  using Clock = std::chrono::steady_clock;
  RssSampler() : thread_([this] {
      while (!stop_.load()) {
        samples_.push_back({Clock::now(), current_rss_bytes()});
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }) {}
  ~RssSampler() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // The largest sample inside any of `phase`'s spans (after stop()).
  std::uint64_t peak_in(const std::vector<PhaseSpan>& spans, const std::string& phase) const {
    std::uint64_t peak = 0;
    for (const PhaseSpan& s : spans) {
      if (s.phase != phase) continue;
      for (const auto& [t, rss] : samples_) {
        if (t >= s.begin && t <= s.end) peak = std::max(peak, rss);
      }
    }
    return peak;
  }

 private:
  std::vector<std::pair<Clock::time_point, std::uint64_t>> samples_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int run(const Args& a) {
  kernels::set_num_threads(a.threads);
  const std::string src = MOESLIM_SOURCE_DIR;
  const recipe::Recipe recipe = recipe::load_recipe(a.recipe);
  pipeline::QuantRunOptions o;
  o.model_path = a.model;
  o.save_path = a.out;
  o.force = true;
  o.anti_dataset = src + "/data/qwen3-moe_anti_prompt_50.json";
  o.calib_dataset = src + "/data/qwen3-moe_calib_prompt_50.json";
  o.search_rows = a.search_rows;
  o.experts_per_group = a.expert_group;
  o.float_precision = a.precision == "f32" ? model::FloatPrecision::kF32 : model::FloatPrecision::kBF16;

  const double float_peak = kernels::measure_gemm_peak(
      a.precision == "f32" ? kernels::GemmPrecision::kF32 : kernels::GemmPrecision::kBF16);
  const double int8_peak = kernels::measure_int8_gemm_peak();
  Profiler::reset();
  Profiler::enable(true);
  RssSampler rss_samples;
  const pipeline::QuantResult r = pipeline::run_quant(recipe, o);
  rss_samples.stop();
  Profiler::enable(false);
  const double rss = peak_rss_gib();

  const model::ModelConfig config = model::ModelConfig::load(a.model);
  const std::map<std::string, double>& timing = r.report.timing_seconds;
  const auto seconds_of = [&](const char* phase) { return timing.count(phase) > 0 ? timing.at(phase) : 0.0; };
  const double layers = static_cast<double>(config.num_hidden_layers);
  // setup (embedding, tokenizing) and finish (lm_head, closing shards) happen once; the rest is per layer.
  const double setup = seconds_of("setup") + seconds_of("finish");
  const double total = seconds_of("total");
  const double per_layer = (total - setup) / layers;
  std::printf("model: %s (%lld layers, hidden %lld, %lld experts top-%lld)\n", a.model.c_str(),
              static_cast<long long>(config.num_hidden_layers), static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.num_experts), static_cast<long long>(config.num_experts_per_tok));
  std::printf("recipe: %s\n", recipe.file.string().c_str());
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("cpu: %s; threads %d; float passes %s; OMP_WAIT_POLICY=%s\n", kernels::describe_cpu().c_str(),
              a.threads, a.precision.c_str(), wait_policy != nullptr ? wait_policy : "(libgomp default)");
  std::printf("anti tokens %lld, calibration tokens %lld, batch %lld, %lld experts per group\n",
              static_cast<long long>(r.report.anti_tokens), static_cast<long long>(r.report.calibration_tokens),
              static_cast<long long>(r.report.batch_size), static_cast<long long>(r.report.experts_per_group));
  std::printf("GEMM peaks (2048^3, same run): %s %.1f GFLOP/s, int8 %.1f GOP/s\n\n", a.precision.c_str(), float_peak,
              int8_peak);
  // Per phase: the GEMM work done in it (the forward passes', and the α/β search's in the smoothing phase;
  // float and int8 apart), the floor (that work at the peaks above) and how far the measured time is from it.
  // Phases without GEMMs (weight quantization, writing) show only their time.
  // The last column: the largest RSS sampled during the phase, in any layer.
  std::printf("| phase | s / layer | share | float GFLOP / layer | int8 GOP / layer | floor s / layer | time / floor "
              "| peak RSS GiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
  double floor_total = 0;
  for (const auto& [phase, seconds] : timing) {
    if (phase == "total") continue;
    const double phase_peak = gib(rss_samples.peak_in(r.report.phase_spans, phase));
    const bool once = phase == "setup" || phase == "finish";
    const auto w = r.report.gemm_work.find(phase);
    if (once || w == r.report.gemm_work.end()) {
      std::printf("| %s%s | %.2f | %.1f%% | | | | | %.2f |\n", phase.c_str(), once ? " (once, s)" : "",
                  once ? seconds : seconds / layers, 100 * seconds / total, phase_peak);
      continue;
    }
    const double floor = (w->second.float_flops / float_peak + w->second.integer_ops / int8_peak) / 1e9;
    floor_total += floor;
    std::printf("| %s | %.2f | %.1f%% | %.0f | %.0f | %.2f | %.2f | %.2f |\n", phase.c_str(), seconds / layers,
                100 * seconds / total, w->second.float_flops / 1e9 / layers, w->second.integer_ops / 1e9 / layers,
                floor / layers, seconds / floor, phase_peak);
  }
  std::printf("| all per-layer phases | %.2f | |\n", per_layer);
  std::printf("| once: setup + finish | %.2f s | |\n", setup);
  std::printf("GEMM floor of the passes: %.2f s / layer; per-layer time / floor: %.2f\n\n", floor_total / layers,
              per_layer / (floor_total / layers));

  // Float (bf16/f32) and int8 GEMMs of a kind are summed together: compare with the two peaks above. Experts
  // and the search's row blocks run in parallel, each on one thread, so their rows sum the threads' seconds
  // and their rates are per thread.
  std::printf("| kernel | seconds (experts, search: summed over threads) | GFLOP/s or GOP/s |\n|---|---:|---:|\n");
  for (int k = 0; k < static_cast<int>(ProfileKind::kCount); ++k) {
    const ProfileEntry e = Profiler::get(static_cast<ProfileKind>(k));
    if (e.calls == 0) continue;
    std::printf("| %s | %.2f | %s |\n", profile_kind_name(static_cast<ProfileKind>(k)), e.seconds,
                e.flops > 0 ? std::to_string(static_cast<int>(e.flops / e.seconds / 1e9 + 0.5)).c_str() : "-");
  }
  std::printf("\npeak RSS: %.2f GiB (the run's estimate at start: %.2f GiB)\n", rss,
              static_cast<double>(r.report.expected_peak_memory_bytes) / (1024.0 * 1024.0 * 1024.0));
  const std::int64_t n = a.project_layers > 0 ? a.project_layers : config.num_hidden_layers;
  std::printf("projected for %lld layers: %.1f min (once %.1f s + %.2f s/layer)\n", static_cast<long long>(n),
              (setup + per_layer * static_cast<double>(n)) / 60.0, setup, per_layer);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_bench: %s\n", e.what());
    return 1;
  }
}
