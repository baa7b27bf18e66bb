#include "pipeline/resource_estimate.h"

#include <fmt/core.h>

#include <string>
#include <system_error>

#include "core/error.h"
#include "core/tensor.h"

namespace moeslim::pipeline {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(std::uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / kGiB); }

}  // namespace

ResourceEstimate estimate_resources(const recipe::Recipe& recipe, const model::ModelConfig& config,
                                    const WorkloadShape& work) {
  const auto fb = static_cast<std::uint64_t>(work.float_bytes);
  const auto hidden = static_cast<std::uint64_t>(config.hidden_size);
  const std::uint64_t embedding = static_cast<std::uint64_t>(config.vocab_size) * hidden * fb;
  ResourceEstimate e;
  // The format's tensor data, and the side files (tokenizer, config, index, description, report: the real
  // Qwen3 tokenizer.json alone is 11 MB).
  e.output_bytes = work.output_tensor_bytes + 16 * kMiB;
  std::uint64_t largest_layer = 0;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    std::uint64_t layer = 0;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) {
      layer += static_cast<std::uint64_t>(shape_numel(t.shape)) * fb;
    }
    largest_layer = std::max(largest_layer, layer);
  }

  // Peak memory, a model fitted to the peaks bench/quant_bench.sh measures at Qwen3-30B-A3B and 235B-A22B
  // shapes: the process and its libraries; the embedding (mapped, read once); a layer's weights as mapped
  // plus what the layer's work holds beside them (smoothed copies, quantized codes: about 0.6 of the layer
  // again); the activation sets in float32 (input and output of the layer for every prompt set, the float
  // reference, and in the v1 flow the float and quantized streams with their norms); and one chunk's
  // working buffers (attention projections, the experts' gate/up/down intermediates).
  const std::uint64_t process = 160 * kMiB;
  const std::uint64_t row_bytes = hidden * 4;
  const std::uint64_t activations =
      work.v1 ? 12 * row_bytes * static_cast<std::uint64_t>(work.calibration_tokens)
              : 4 * row_bytes * static_cast<std::uint64_t>(work.calibration_tokens + work.anti_tokens);
  const auto chunk_row = static_cast<std::uint64_t>(
      config.num_experts_per_tok * config.moe_intermediate_size * 3 + config.q_width() + 2 * config.kv_width() +
      4 * config.hidden_size);
  const std::uint64_t chunk = static_cast<std::uint64_t>(work.rows_per_chunk) * chunk_row * 4;
  e.peak_memory_bytes = process + embedding + largest_layer + largest_layer * 3 / 5 + activations + chunk;
  return e;
}

void check_free_disk_space(const ResourceEstimate& estimate, const std::filesystem::path& output_dir) {
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(output_dir, ec);
  if (ec) {
    throw Error(ErrorCode::kIo, "cannot read the free space of the output's filesystem: " + ec.message(),
                output_dir.string());
  }
  const std::uint64_t needed = estimate.output_bytes + estimate.output_bytes / 20 + 64 * kMiB;
  if (space.available < needed) {
    throw Error(ErrorCode::kIo,
                "not enough free disk space for the output: it needs about " + gib(needed) + " (" +
                    gib(estimate.output_bytes) + " of files plus a margin), the filesystem has " +
                    gib(space.available) + " available; free space or choose another --save_path",
                output_dir.string());
  }
}

}  // namespace moeslim::pipeline
