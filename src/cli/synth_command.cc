// `moeslim synth`: a random checkpoint with a real model family's names, shapes and sharding.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/resources.h"
#include "core/error.h"
#include "core/log.h"
#include "model/synthetic_checkpoint.h"

namespace moeslim::cli {
namespace {

struct SynthCliOptions {
  std::string preset;
  std::int64_t layers = 2;
  std::string out;
  std::uint64_t seed = 0;
  std::string tokenizer;
};

int run_synth(const SynthCliOptions& o) {
  model::SynthOptions s;
  s.preset = o.preset;
  s.layers = o.layers;
  s.seed = o.seed;
  s.out_dir = o.out;
  s.tokenizer = o.tokenizer.empty() ? default_tokenizer_for_preset(o.preset) : std::filesystem::path(o.tokenizer);
  if (std::filesystem::exists(s.out_dir) && !std::filesystem::is_empty(s.out_dir)) {
    throw Error(ErrorCode::kInvalidArgument, "output directory exists and is not empty", o.out, "--out");
  }
  const model::SynthSummary summary = model::write_synthetic_checkpoint(s);
  log_info("synth: wrote {} tensors, {:.2f} GiB in {} shards to {}", summary.tensors,
           static_cast<double>(summary.bytes) / (1u << 30), summary.shards.size(), o.out);
  return 0;
}

}  // namespace

CommandRunner register_synth(CLI::App& app) {
  auto opts = std::make_shared<SynthCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "synth",
      "Write a random Qwen3-MoE checkpoint with the real tensor names, shapes, dtype (bf16), sharding (4 GiB\n"
      "shards + index) and config of a model family, with num_hidden_layers = --layers. Weights ~ N(0, 0.02²),\n"
      "norms ~ 1, so activations stay finite. Written tensor by tensor (never the whole model in memory).\n"
      "Example: moeslim synth --preset qwen3-30b-a3b --layers 2 --out /tmp/q30b-2l");
  sub->add_option("--preset", opts->preset, "tiny | qwen3-30b-a3b | qwen3-235b-a22b | qwen3-coder-480b-a35b: the real shapes (a decoder\n"
                  "layer is ~1.2 GB at 30b, ~4.9 GB at 235b, ~15 GB at 480b; the embedding and lm_head add\n"
                  "0.6, 1.2 and 1.9 GB)")
      ->required()
      ->check(CLI::IsMember(model::synthetic_preset_names()));
  sub->add_option("--layers", opts->layers, "Decoder layers")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("--out", opts->out, "Output directory (must not exist or be empty)")->required();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json (or a directory with one) to copy in; default: the bundled tokenizer of the "
                  "preset's vocabulary");
  return [opts] { return run_synth(*opts); };
}

}  // namespace moeslim::cli
