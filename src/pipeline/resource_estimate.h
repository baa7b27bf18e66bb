// What a quant run will need, known before it starts: the bytes it will write (checked against the free
// space of the output's filesystem, so a run never fails hours in on a full disk) and the peak resident
// memory it will reach (logged at start and recorded in quant_report.json beside the measured peak).
#pragma once

#include <cstdint>
#include <filesystem>

#include "model/config.h"
#include "recipe/recipe.h"

namespace moeslim::pipeline {

struct ResourceEstimate {
  std::uint64_t output_bytes = 0;       // every file the output directory will hold
  // Expected peak RSS; bench/quant_bench prints it beside the measured peak (README, Performance).
  std::uint64_t peak_memory_bytes = 0;
};

struct WorkloadShape {
  std::int64_t calibration_tokens = 0;  // real tokens of the calibration set
  std::int64_t anti_tokens = 0;         // of the anti set (0 without one)
  std::int64_t rows_per_chunk = 0;      // the most token rows one forward chunk holds (batch size × longest)
  bool v1 = false;                      // the one-click (W4A8) flow, which carries float and quantized streams
  int threads = 1;                      // kernel threads: each runs experts with buffers of its own
  int float_bytes = 2;                  // the checkpoint's float dtype size
  std::int64_t experts_per_group = 0;   // the passes' expert groups (0: a layer's experts all at once)
  std::uint64_t output_tensor_bytes = 0;  // the output format's tensor data (formats::OutputFormat::estimate_bytes)
};

// How many experts the quantizer's passes hold at once when the user does not say: the layer's experts cut into
// the fewest even groups of at most kExpertGroupBytes of float weights each, but at least two experts per
// thread (fewer would leave threads idle while a group runs), and never more than the layer has. 0 for a model
// without experts.
// 1.5 GiB keeps a Qwen3-30B-A3B layer (1.2 GB of experts) in one group: it fits any machine that runs it, and
// one group is the fast path for --rot (quant/rotate_step.cc).
inline constexpr std::uint64_t kExpertGroupBytes = std::uint64_t{3} << 29;
std::int64_t default_experts_per_group(const model::ModelConfig& config, int float_bytes, int threads);

// `config` already limited to the layers that will be written.
ResourceEstimate estimate_resources(const recipe::Recipe& recipe, const model::ModelConfig& config,
                                    const WorkloadShape& work);

// kIo naming `output_dir` when its filesystem has less free space than the estimate plus a margin (5% and
// 64 MiB), saying how much is needed and available.
void check_free_disk_space(const ResourceEstimate& estimate, const std::filesystem::path& output_dir);

}  // namespace moeslim::pipeline
