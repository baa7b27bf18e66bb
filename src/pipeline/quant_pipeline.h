// The streaming quantization driver: runs a recipe (recipe/recipe.h) over a Qwen3-MoE checkpoint one decoder
// layer at a time, in four parts: setup (config, checkpoint, tokenizer, prompt sets, resource estimate, output
// transaction, the embedding as the steps edit it); the loop (read each layer's weights once, run the layer
// quantizer, layer_quantizer.h, over the recipe's steps, hand its tensors to the writer in Hugging Face module
// order, free it); finish (final norm and lm_head as the steps edit them, index, description, config); the
// report (typed, quant_report.h; with eval_data the written directory is evaluated against the float model
// first) and the rename into place.
//
// Peak memory is one layer's attention and one group of its experts, plus the activation sets, whatever the depth
// and however many experts a layer has.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "model/linear.h"
#include "pipeline/quant_report.h"
#include "recipe/recipe.h"

namespace moeslim::pipeline {

// What the command line decides beyond the recipe (datasets and batch size already resolved: the caller merges
// the recipe's `data` block with the flags).
struct QuantRunOptions {
  std::filesystem::path model_path;
  std::filesystem::path save_path;
  std::filesystem::path anti_dataset;  // v0 recipes with a smoothing step
  std::filesystem::path calib_dataset;
  std::filesystem::path eval_data;  // optional: perplexity / KL / top-1 of the written model vs float
  std::int64_t eval_window = 256;   // tokens per evaluation window
  std::int64_t layer_count = 0;     // 0 = all layers
  std::int64_t batch_size = 4;      // v0 only; v1 runs one prompt per forward
  bool stats_include_padding = false;  // v0 only
  bool force = false;
  std::string model_type;  // "Qwen3-30B" / "Qwen3-235B" / "" (recorded in the report)
  std::string quant_type;  // "w8a8" / "w4a8" / "" (recorded in the report)
  model::FloatPrecision float_precision = model::FloatPrecision::kF32;  // float passes (statistics, reference)
  std::int64_t search_rows = 0;  // flex_smooth α/β search: at most this many activation rows (0 = all)
  // Experts a pass holds at once (0: default_experts_per_group, resource_estimate.h). Bounds the peak memory;
  // the output does not depend on it.
  std::int64_t experts_per_group = 0;
  bool skip_disk_space_check = false;  // write even when the estimated output exceeds the free space
};

struct QuantResult {
  QuantReport report;  // also written as quant_report.json in the output
};

QuantResult run_quant(const recipe::Recipe& recipe, const QuantRunOptions& options);

}  // namespace moeslim::pipeline
