// Random Qwen3-MoE checkpoints with the real tensor names, shapes, dtype (bf16), sharding, index and config of
// a model family, for benchmarks and tests at real widths without downloading 61 GB. Written tensor by tensor:
// the whole model is never in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace moeslim::model {

// "tiny" (the shape of the bundled tiny model), "qwen3-30b-a3b", "qwen3-235b-a22b", "qwen3-coder-480b-a35b".
std::vector<std::string> synthetic_preset_names();
// The preset's config.json with num_hidden_layers = layers. Unknown preset: kInvalidArgument.
nlohmann::ordered_json synthetic_config_json(const std::string& preset, std::int64_t layers);

struct SynthOptions {
  std::string preset;
  std::int64_t layers = 2;
  std::uint64_t seed = 0;
  std::filesystem::path out_dir;
  std::filesystem::path tokenizer;  // a tokenizer.json or a directory holding one (tokenizer_config.json too)
  std::uint64_t max_shard_bytes = 4ull << 30;
  nlohmann::ordered_json config_overrides;  // keys merged into config.json (tests: mlp_only_layers, ...)
};

struct SynthSummary {
  std::int64_t tensors = 0;
  std::uint64_t bytes = 0;
  std::vector<std::string> shards;
};

// Weights ~ N(0, 0.02²) (norm weights ~ 1 ± 0.02), deterministic in (seed, tensor name), bf16.
SynthSummary write_synthetic_checkpoint(const SynthOptions& options);

}  // namespace moeslim::model
