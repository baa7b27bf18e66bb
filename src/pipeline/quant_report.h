// What a quant run reports, typed: the CLI's summary and the benchmarks read these fields; to_json turns them
// into quant_report.json at the edge (its keys are the file's documented format).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/profiler.h"
#include "eval/router_agreement.h"
#include "quant/step.h"

namespace moeslim::pipeline {

struct LayerReport {
  std::int64_t layer = 0;
  double relative_error = 0;                      // ‖quantized − float‖ / ‖float − input‖ (calibration set)
  std::vector<quant::SmoothingChoice> smoothing;  // what the smoothing steps chose
  std::vector<std::int64_t> expert_tokens;        // calibration tokens per expert; empty for a dense layer
  std::vector<std::int64_t> anti_expert_tokens;   // anti-outlier set tokens per expert, when a pass ran over it
  std::vector<quant::WeightFallback> weight_fallbacks;  // linears a data-fitted method (GPTQ) left to its fallback
  std::optional<eval::RouterAgreement> router_agreement;  // MoE layers, on the calibration set

  // Experts that saw no calibration token.
  std::vector<std::int64_t> experts_without_tokens() const;
  // Experts that fewer than `min_tokens` calibration tokens reached (quantized from their weights alone).
  std::vector<std::int64_t> starved_experts(std::int64_t min_tokens) const;
};

struct EvaluationReport {
  std::string data;
  std::int64_t tokens = 0;
  double float_perplexity = 0;
  double quantized_perplexity = 0;
  double perplexity_change = 0;  // quantized / float − 1
  double mean_kl = 0;
  double top1_agreement = 0;
  // Per MoE layer and over all of them, the quantized model's routing against the float model's on this text.
  std::vector<std::pair<std::int64_t, eval::RouterAgreement>> router_layers;
  eval::RouterAgreement router_total;
};

struct QuantReport {
  std::string recipe;
  std::string recipe_file;
  std::string apiversion;
  std::vector<std::string> steps;           // the steps as run, by name
  nlohmann::ordered_json step_settings;     // each step's settings() as run
  std::string quant_type;
  std::string model_type;
  std::string model_path;
  std::string format;
  std::string rotation;   // "hadamard" | "none"
  std::string smoothing;  // "m4" | "flex_smooth" | "none"
  std::string anti_dataset;
  std::string calib_dataset;
  std::string float_precision;  // "f32" | "bf16"
  std::int64_t batch_size = 1;
  bool stats_include_padding = false;
  std::int64_t layers = 0;
  std::int64_t anti_tokens = 0;
  std::int64_t calibration_tokens = 0;
  std::int64_t starved_expert_min_tokens = 1;  // the recipe's data.min_expert_tokens
  std::vector<LayerReport> per_layer;
  std::optional<EvaluationReport> evaluation;
  std::uint64_t expected_output_bytes = 0;
  std::size_t output_tensors = 0;
  // Those in shards written in place as planned; the others were copied once more (formats/writer_calls.h).
  std::size_t output_tensors_written_once = 0;
  std::uint64_t expected_peak_memory_bytes = 0;
  // These vary run to run, or with --threads: comparisons of reports drop them.
  int threads = 1;  // compute threads used
  std::int64_t experts_per_group = 0;  // experts a pass held at once (by default it follows the threads)
  std::uint64_t peak_rss_bytes = 0;
  std::map<std::string, double> timing_seconds;  // per phase, and "total"
  std::map<std::string, FlopTotals> gemm_work;   // per phase, only when profiling (benchmarks; not in the JSON)
  std::vector<PhaseSpan> phase_spans;            // when each phase ran, only when profiling (not in the JSON)
};

nlohmann::ordered_json to_json(const QuantReport& report);

}  // namespace moeslim::pipeline
