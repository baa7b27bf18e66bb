// quant_report.json read into the values the report page shows. The file is untrusted input (a user may have
// edited it, or it may come from an older or newer moeslim), so everything is checked here, once, and the page
// is built only from what this returns. Only per_layer[].layer and per_layer[].relative_error are required;
// any other field may be absent (the page then says so), but a field that is present with the wrong type or an
// impossible value is an Error (kFormat) whose field is its path in the report, e.g.
// "per_layer[2].smoothing.ov.alpha". nlohmann::json writes NaN and infinity as null, so a null number reads as
// NaN and the page shows it as "NaN".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moeslim::report {

// How often the router picked the same experts after quantization as before.
struct RouterAgreement {
  double exact = 0;                    // fraction of tokens whose top-k expert set is unchanged
  std::optional<double> mean_overlap;  // mean |A ∩ B| / k
  std::optional<std::int64_t> tokens;
};

struct SearchPoint {
  double alpha = 0;
  double beta = 0;
  double error = 0;
};

// What one smoothing subgraph ("norm-linear", "ov", "moe-input", "up-down") chose in one layer.
struct SubgraphChoice {
  std::string subgraph;
  double alpha = 0;
  double beta = 0;
  std::optional<bool> searched;
  std::optional<double> error;                   // the search's best error
  std::optional<std::int64_t> experts_smoothed;  // up-down only
  std::vector<SearchPoint> search;               // the search's loss curve, when the report has it
};

struct WeightFallback {
  std::string module;
  std::string reason;
};

struct LayerData {
  std::int64_t layer = 0;
  double relative_error = 0;
  std::vector<std::int64_t> expert_tokens;  // empty: a dense layer, or not in the report
  std::vector<SubgraphChoice> smoothing;
  std::vector<WeightFallback> weight_fallbacks;
  std::optional<RouterAgreement> router_agreement;  // on the calibration tokens
};

struct EvaluationData {
  std::string data;
  std::optional<std::int64_t> tokens;
  double float_perplexity = 0;
  double quantized_perplexity = 0;
  double perplexity_change = 0;  // quantized / float − 1
  std::optional<double> mean_kl;
  std::optional<double> top1_agreement;
  std::optional<RouterAgreement> router_agreement;  // over the evaluation tokens
  std::vector<RouterAgreement> router_agreement_per_layer;
};

struct RecipeStep {
  std::string step;
  std::string settings_json;  // the step's settings as run, pretty-printed
};

struct ReportData {
  std::vector<LayerData> layers;
  std::optional<EvaluationData> evaluation;
  std::int64_t starved_expert_min_tokens = 1;  // fewer calibration tokens than this: starved
  bool starved_threshold_in_report = false;
  std::vector<std::pair<std::string, double>> timing_seconds;  // phases in the report's order, without "total"
  std::optional<double> total_seconds;
  std::optional<double> peak_rss_bytes;
  std::optional<double> expected_peak_memory_bytes;
  std::optional<double> expected_output_bytes;
  // The run's settings as the report states them (recipe, format, model, datasets, threads, ...), for the
  // "recipe as run" table: key, value as text. Only the keys the page knows, in a fixed order.
  std::vector<std::pair<std::string, std::string>> run_settings;
  std::vector<RecipeStep> steps;
  bool steps_in_report = false;
};

// Reads `report` (quant_report.json as parsed). Throws Error(kFormat) naming the field at fault.
ReportData read_report_data(const nlohmann::ordered_json& report);

}  // namespace moeslim::report
