// The W8A8 mixed pipeline of msModelSlim's Qwen3-MoE example, streamed one decoder layer at a time:
// embed both prompt sets, then for each layer read its weights once, run quantize_w8a8_layer (w8a8_layer.h:
// anti statistics, m4, weight quantization, calibration), hand its tensors to the writer in Hugging Face
// module order and free it; finally the final norm and lm_head, the index, description and config. With
// eval_data, the written directory is evaluated against the float model before it is renamed into place.
//
// Peak memory is one layer's weights plus the two activation sets, whatever the depth.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/linear.h"

namespace moeslim::pipeline {

enum class AntiMethod { kNone, kM4 };

struct W8A8Options {
  std::filesystem::path model_path;
  std::filesystem::path save_path;
  std::filesystem::path anti_dataset;
  std::filesystem::path calib_dataset;
  std::filesystem::path eval_data;  // optional: perplexity / KL / top-1 of the written model vs float
  std::int64_t eval_window = 256;   // tokens per evaluation window
  std::int64_t layer_count = 0;     // 0 = all layers
  std::int64_t batch_size = 4;
  bool mindie_format = false;
  bool stats_include_padding = false;
  bool force = false;
  bool rotate = false;  // --rot: Hadamard rotation (spec §5) of every layer as it streams, before smoothing
  AntiMethod anti_method = AntiMethod::kM4;
  std::string model_type;  // "Qwen3-30B" / "Qwen3-235B" / "" (recorded in the report)
  model::FloatPrecision float_precision = model::FloatPrecision::kF32;  // float passes (statistics, reference)
};

struct W8A8Result {
  nlohmann::ordered_json report;  // also written as quant_report.json in the output
};

W8A8Result run_w8a8(const W8A8Options& options);

}  // namespace moeslim::pipeline
