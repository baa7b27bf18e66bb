// `moeslim info`: what a Hugging Face checkpoint directory holds, and whether it is complete for its config.
#include <cstdio>
#include <map>
#include <string>

#include <fmt/core.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "model/config.h"

namespace moeslim::cli {
namespace {

struct InfoOptions {
  std::string model;
};

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

int run_info(const InfoOptions& o) {
  const model::ModelConfig c = model::ModelConfig::load(o.model);
  std::int64_t moe_layers = 0;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) moe_layers += c.is_moe_layer(l) ? 1 : 0;

  std::printf("model        %s (%s)\n", o.model.c_str(), c.model_type.c_str());
  std::printf("layers       %lld (%lld MoE, %lld dense MLP)\n", static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(moe_layers), static_cast<long long>(c.num_hidden_layers - moe_layers));
  std::printf("hidden       %lld, vocab %lld, rms_norm_eps %g, rope_theta %g\n",
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.vocab_size), c.rms_norm_eps,
              c.rope_theta);
  std::printf("attention    %lld query heads, %lld kv heads, head_dim %lld\n",
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.num_key_value_heads),
              static_cast<long long>(c.head_dim));
  std::printf("experts      %lld, top-%lld, width %lld, norm_topk_prob %s\n", static_cast<long long>(c.num_experts),
              static_cast<long long>(c.num_experts_per_tok), static_cast<long long>(c.moe_intermediate_size),
              c.norm_topk_prob ? "true" : "false");
  std::printf("dtype        %s, lm_head %s\n", c.torch_dtype.c_str(), c.tie_word_embeddings ? "tied" : "separate");

  const io::Checkpoint ckpt = io::Checkpoint::open(o.model);
  std::uint64_t total_bytes = 0;
  std::size_t total_tensors = 0;
  std::printf("\nshards\n");
  for (const auto& s : ckpt.shard_stats()) {
    std::printf("  %-40s %6zu tensors  %s\n", s.file_name.c_str(), s.tensor_count, human_bytes(s.bytes).c_str());
    total_bytes += s.bytes;
    total_tensors += s.tensor_count;
  }
  std::printf("  %-40s %6zu tensors  %s\n", "total", total_tensors, human_bytes(total_bytes).c_str());

  const auto expected = model::expected_tensors(c);
  std::size_t missing = 0;
  std::size_t wrong_shape = 0;
  std::map<std::string, bool> is_expected;
  for (const auto& t : expected) {
    is_expected[t.name] = true;
    if (!ckpt.contains(t.name)) {
      if (missing++ < 10) std::printf("  MISSING   %s %s\n", t.name.c_str(), shape_to_string(t.shape).c_str());
      continue;
    }
    const auto& info = ckpt.info(t.name);
    if (info.shape != t.shape) {
      if (wrong_shape++ < 10) {
        std::printf("  SHAPE     %s is %s, config implies %s\n", t.name.c_str(), shape_to_string(info.shape).c_str(),
                    shape_to_string(t.shape).c_str());
      }
    }
  }
  std::size_t extra = 0;
  for (const auto& name : ckpt.names()) {
    if (!is_expected.count(name) && extra++ < 10) std::printf("  EXTRA     %s\n", name.c_str());
  }
  std::printf("\ncheck        %zu tensors expected: %zu missing, %zu with a wrong shape, %zu unexpected\n",
              expected.size(), missing, wrong_shape, extra);
  if (missing > 0 || wrong_shape > 0) {
    throw Error(ErrorCode::kFormat,
                fmt::format("checkpoint is incomplete for its config: {} tensors missing, {} with a wrong shape",
                            missing, wrong_shape),
                o.model);
  }
  if (extra > 0) log_warn("{} tensors in the checkpoint are not used by the Qwen3-MoE architecture", extra);
  return 0;
}

}  // namespace

CommandRunner register_info(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Summarise a Hugging Face Qwen3-MoE checkpoint: its config (layers, widths, heads, experts, top-k, dtype),\n"
      "tensor count and bytes per shard, and whether every tensor the config implies is present with the right\n"
      "shape (exit status 1 if not).\nExample: moeslim info --model models/tiny-qwen3-moe");
  sub->add_option("--model", opts->model, "Model directory (config.json + safetensors shards)")
      ->required()
      ->check(CLI::ExistingDirectory);
  return [opts] { return run_info(*opts); };
}

}  // namespace moeslim::cli
