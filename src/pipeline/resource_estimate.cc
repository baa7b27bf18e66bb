#include "pipeline/resource_estimate.h"

#include <fmt/core.h>

#include <algorithm>
#include <string>
#include <system_error>

#include "core/error.h"
#include "core/tensor.h"
#include "quant/quantize_step.h"

namespace moeslim::pipeline {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(std::uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / kGiB); }

}  // namespace

std::int64_t default_experts_per_group(const model::ModelConfig& config, int float_bytes, int threads) {
  const std::int64_t experts = config.num_experts;
  if (experts <= 0) return 0;
  const std::uint64_t expert_bytes = 3 * static_cast<std::uint64_t>(config.hidden_size) *
                                     static_cast<std::uint64_t>(config.moe_intermediate_size) *
                                     static_cast<std::uint64_t>(std::max(1, float_bytes));
  const std::uint64_t layer_bytes = expert_bytes * static_cast<std::uint64_t>(experts);
  const auto groups = static_cast<std::int64_t>(
      std::max<std::uint64_t>(1, (layer_bytes + kExpertGroupBytes - 1) / kExpertGroupBytes));
  const std::int64_t even = (experts + groups - 1) / groups;
  return std::min(experts, std::max(even, 2 * static_cast<std::int64_t>(std::max(1, threads))));
}

ResourceEstimate estimate_resources(const recipe::Recipe& recipe, const model::ModelConfig& config,
                                    const WorkloadShape& work) {
  const auto fb = static_cast<std::uint64_t>(work.float_bytes);
  const auto hidden = static_cast<std::uint64_t>(config.hidden_size);
  const std::uint64_t embedding = static_cast<std::uint64_t>(config.vocab_size) * hidden * fb;
  ResourceEstimate e;
  // The format's tensor data, and the side files (tokenizer, config, index, description, report: the real
  // Qwen3 tokenizer.json alone is 11 MB).
  e.output_bytes = work.output_tensor_bytes + 16 * kMiB;
  const std::int64_t per_group =
      work.experts_per_group > 0 ? std::min(work.experts_per_group, config.num_experts) : config.num_experts;
  std::uint64_t largest_layer = 0;  // the weights a layer holds at once: all but its experts, and one group
  std::uint64_t outside_experts = 0;  // the largest layer's weights but its experts (attention, router, norms)
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    std::uint64_t layer = 0;
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) {
      const bool expert = t.name.find(".mlp.experts.") != std::string::npos;
      if (!expert) layer += static_cast<std::uint64_t>(shape_numel(t.shape)) * fb;
    }
    outside_experts = std::max(outside_experts, layer);
    if (config.is_moe_layer(l)) {
      const std::uint64_t expert = 3 * hidden * static_cast<std::uint64_t>(config.moe_intermediate_size) * fb;
      layer += expert * static_cast<std::uint64_t>(per_group);
    }
    largest_layer = std::max(largest_layer, layer);
  }

  // Peak memory: what a layer holds at its fullest moment, counted from the code, plus a fitted constant.
  //  - The process, its libraries, the tokenizer and the allocators' slack: 160 MiB, fitted so that the estimate
  //    is within 15 % of the peaks bench/quant_bench measured (README, Performance) at Qwen3-30B-A3B (W8A8 and
  //    W4A8, one expert group), Qwen3-235B-A22B and Qwen3-Coder-480B-A35B shapes (W8A8, 43 and 16 experts per
  //    group), and above each: the 30B runs held ~0.1 GiB more than the count below, the bigger ones ~0.15 GiB
  //    less. (Before tensors from 1 MiB had mappings of their own, core/large_buffer.h, glibc's arenas kept
  //    ~0.5 GiB more at 30B shapes, and this constant was 360 MiB.)
  //  - The token streams in float32: v0, the anti set, the calibration set and its float reference; v1, the
  //    calibration set, its input (kept for the quantized check) and, with flex_smooth, the observed input rows
  //    of q/k/v and of o_proj, which the α/β search reads.
  //  - The larger of three moments. At setup, the embedding (mapped and read once, then released). In a pass,
  //    the weights the layer holds at once: its attention and router and one group of experts, as mapped (the
  //    float passes read them in place and the quantized codes, half the bytes, replace them weight by weight),
  //    plus the forward's buffers, which the run keeps for every pass (model/forward_scratch.h): per row of the
  //    largest chunk, the attention's normed input, q, k, v, context and output, the MLP's normed input and
  //    output and the router logits; per row of the whole set, the MoE block's input and output and a batch of
  //    expert outputs (about the set's rows per 16 threads); and each thread's expert input, gate and up for
  //    the largest expert it met (counted as four times an expert's mean share of the chunk, or the whole
  //    chunk for a dense MLP). During the α/β search (v1), the weights outside the experts and those buffers,
  //    with the search's copy of the larger subgraph's rows and their float product.
  const std::uint64_t process = 160 * kMiB;
  const std::uint64_t row_bytes = hidden * 4;
  const auto calib_rows = static_cast<std::uint64_t>(work.calibration_tokens);
  const auto q_bytes = static_cast<std::uint64_t>(config.q_width()) * 4;
  const auto qkv_bytes = static_cast<std::uint64_t>(config.q_width() + 2 * config.kv_width()) * 4;
  const bool flex = recipe.find_step("flex_smooth") != nullptr;
  const std::uint64_t activations =
      work.v1 ? calib_rows * (2 * row_bytes + (flex ? row_bytes + q_bytes : 0))
              : row_bytes * (static_cast<std::uint64_t>(work.anti_tokens) + 2 * calib_rows);
  const std::uint64_t search = work.v1 && flex ? calib_rows * std::max(row_bytes + qkv_bytes, q_bytes + row_bytes) : 0;
  const std::int64_t rows = work.rows_per_chunk;
  const std::int64_t threads = std::max(1, work.threads);
  const auto shared_row = static_cast<std::uint64_t>(4 * config.hidden_size + 2 * config.q_width() +
                                                     2 * config.kv_width() + config.num_experts);
  const auto set_rows = static_cast<std::uint64_t>(std::max(work.calibration_tokens, work.anti_tokens));
  // The grouped pass adds a group's expert outputs in batches of about the set's rows per 16 threads.
  const std::uint64_t group_output_rows =
      std::min(set_rows * static_cast<std::uint64_t>((threads + 15) / 16),
               config.num_experts > 0 ? set_rows * static_cast<std::uint64_t>(config.num_experts_per_tok * per_group) /
                                            static_cast<std::uint64_t>(config.num_experts)
                                      : 0);
  std::uint64_t worker_bytes = 0;  // one thread's expert buffers
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const bool moe = config.is_moe_layer(l);
    const std::int64_t width = moe ? config.moe_intermediate_size : config.intermediate_size;
    const std::int64_t expert_rows =
        moe ? std::min(rows, 4 * rows * config.num_experts_per_tok / std::max<std::int64_t>(1, config.num_experts))
            : rows;
    worker_bytes = std::max(worker_bytes, static_cast<std::uint64_t>(expert_rows * (config.hidden_size + 2 * width)) * 4);
  }
  // GPTQ (a weight method fitted to data, quant/linear_hessians.h): each thread quantizing an expert holds its
  // Hessian, the factor, act_order's two reordered copies of it and the working weights (4·hidden² +
  // 2·hidden·width floats); before the experts, the attention's Hessians and factors, o_proj's the largest
  // (4·q_width² floats), counted once. In the v1 flow the attention's input rows are among the activations
  // counted above (the α/β search keeps them too); in the v0 flow they come on top: k_proj's and o_proj's
  // rows of the statistics set, and a shifted copy of k_proj's (m4).
  const auto* quantize = dynamic_cast<const quant::QuantizeStep*>(recipe.find_step("quantize"));
  const bool gptq = quantize != nullptr && quantize->observes();
  const auto h = static_cast<std::uint64_t>(config.hidden_size);
  const auto q = static_cast<std::uint64_t>(config.q_width());
  const auto width =
      static_cast<std::uint64_t>(config.num_experts > 0 ? config.moe_intermediate_size : config.intermediate_size);
  const std::uint64_t gptq_rows = gptq && !work.v1 ? (2 * h + q) * 4 * set_rows : 0;
  const std::uint64_t gptq_bytes =
      gptq ? (static_cast<std::uint64_t>(threads) * (4 * h * h + 2 * h * width) + 4 * q * q) * 4 + gptq_rows : 0;
  const std::uint64_t buffers = static_cast<std::uint64_t>(rows) * shared_row * 4 +
                                (2 * set_rows + group_output_rows) * row_bytes +
                                static_cast<std::uint64_t>(threads) * worker_bytes;
  e.peak_memory_bytes = process + activations +
                        std::max({embedding, largest_layer + buffers + gptq_bytes, outside_experts + buffers + search});
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
