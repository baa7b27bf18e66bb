// Forward-pass benchmark: the 96 msModelSlim calibration prompts (anti + calib sets) through every decoder
// layer of a checkpoint, layer-major, `--batch` prompts per forward call, as calibration runs them.
// Prints tokens/s, time share and achieved GFLOP/s per kernel next to the GEMM peak measured in the same run
// for the same precision, and the peak RSS. Usage:
//   forward_bench --model DIR [--batch 4] [--precision f32|bf16] [--threads N (default: all usable CPUs)] [--data FILE ...]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/cpu_budget.h"
#include "core/process_memory.h"
#include "core/profiler.h"
#include "io/checkpoint.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm_peak.h"
#include "kernels/threading.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

using namespace moeslim;

namespace {

struct Args {
  std::string model;
  std::vector<std::string> data;
  std::int64_t batch = 4;
  std::string precision = "f32";
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
    else if (k == "--data") a.data.push_back(value());
    else if (k == "--batch") a.batch = std::stoll(value());
    else if (k == "--precision") a.precision = value();
    else if (k == "--threads") a.threads = std::stoi(value());
    else throw Error(ErrorCode::kInvalidArgument, "unknown option", "", k);
  }
  if (a.model.empty()) throw Error(ErrorCode::kInvalidArgument, "required", "", "--model");
  if (a.data.empty()) {
    a.data = {std::string(MOESLIM_SOURCE_DIR) + "/data/qwen3-moe_anti_prompt_50.json",
              std::string(MOESLIM_SOURCE_DIR) + "/data/qwen3-moe_calib_prompt_50.json"};
  }
  return a;
}

double peak_rss_gib() { return static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0 * 1024.0); }

int run(const Args& a) {
  kernels::set_num_threads(a.threads);
  const auto precision = a.precision == "bf16" ? model::FloatPrecision::kBF16 : model::FloatPrecision::kF32;
  const auto gemm_precision = a.precision == "bf16" ? kernels::GemmPrecision::kBF16 : kernels::GemmPrecision::kF32;

  const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(a.model);
  model::TokenSet tokens;
  for (const std::string& file : a.data) {
    for (const std::string& t : text::read_text_dataset(file)) {
      const auto ids = tokenizer.encode(t);
      tokens.ids.insert(tokens.ids.end(), ids.begin(), ids.end());
      tokens.layout.add_sequence(static_cast<std::int64_t>(ids.size()));
    }
  }
  const model::ModelConfig config = model::ModelConfig::load(a.model);
  const io::Checkpoint checkpoint = io::Checkpoint::open(a.model);
  model::CheckpointLayerSource source(checkpoint, config, precision);

  const double peak = kernels::measure_gemm_peak(gemm_precision);
  Profiler::reset();
  Profiler::enable(true);
  model::RunOptions options;
  options.max_sequences_per_chunk = a.batch;
  options.max_rows_per_chunk = 1 << 30;
  const auto start = std::chrono::steady_clock::now();
  model::run_layers(source, tokens, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Profiler::enable(false);

  const double token_layers = static_cast<double>(tokens.layout.rows()) * static_cast<double>(config.num_hidden_layers);
  std::printf("model: %s (%lld layers, hidden %lld, %lld experts top-%lld)\n", a.model.c_str(),
              static_cast<long long>(config.num_hidden_layers), static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.num_experts), static_cast<long long>(config.num_experts_per_tok));
  std::printf("cpu: %s; threads %d; precision %s\n", kernels::describe_cpu().c_str(), a.threads, a.precision.c_str());
  std::printf("prompts %zu, tokens %lld, batch %lld\n", tokens.layout.sequences.size(),
              static_cast<long long>(tokens.layout.rows()), static_cast<long long>(a.batch));
  std::printf("forward: %.2f s for %lld layers = %.1f tokens/s per layer (%.1f s/layer)\n", seconds,
              static_cast<long long>(config.num_hidden_layers), token_layers / seconds,
              seconds / static_cast<double>(config.num_hidden_layers));
  std::printf("GEMM peak (%s, 2048^3, same run): %.1f GFLOP/s\n\n", a.precision.c_str(), peak);
  std::printf("| kernel | seconds | share | GFLOP/s | of peak |\n|---|---:|---:|---:|---:|\n");
  double accounted = 0;
  for (int k = 0; k < static_cast<int>(ProfileKind::kCount); ++k) {
    const ProfileEntry e = Profiler::get(static_cast<ProfileKind>(k));
    if (e.calls == 0) continue;
    accounted += e.seconds;
    const double gflops = e.flops > 0 ? e.flops / e.seconds / 1e9 : 0;
    std::printf("| %s | %.2f | %.1f%% | %s | %s |\n", profile_kind_name(static_cast<ProfileKind>(k)), e.seconds,
                100 * e.seconds / seconds, e.flops > 0 ? std::to_string(static_cast<int>(gflops + 0.5)).c_str() : "-",
                e.flops > 0 && k != static_cast<int>(ProfileKind::kAttentionCore)
                    ? (std::to_string(static_cast<int>(100 * gflops / peak + 0.5)) + "%").c_str()
                    : "-");
  }
  std::printf("| other (residual adds, buffers) | %.2f | %.1f%% | - | - |\n", seconds - accounted,
              100 * (seconds - accounted) / seconds);
  std::printf("\npeak RSS: %.2f GiB\n", peak_rss_gib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forward_bench: %s\n", e.what());
    return 1;
  }
}
