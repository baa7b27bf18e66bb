#include "pipeline/quant_report.h"

namespace moeslim::pipeline {
namespace {

using nlohmann::ordered_json;

// Per subgraph: α, β, whether searched (and the search's error); up-down also how many experts it smoothed.
ordered_json smoothing_json(const std::vector<quant::SmoothingChoice>& choices) {
  ordered_json out = ordered_json::object();
  for (const quant::SmoothingChoice& c : choices) {
    ordered_json j = {{"alpha", c.alpha}, {"beta", c.beta}};
    if (c.subgraph == "ov" || c.subgraph == "norm-linear") {
      j["searched"] = c.searched;
      if (c.searched) j["error"] = c.search_error;
      if (!c.search_curve.empty()) {
        j["search"] = ordered_json::array();
        for (const auto& [alpha, beta, error] : c.search_curve) {
          j["search"].push_back({{"alpha", alpha}, {"beta", beta}, {"error", error}});
        }
      }
    }
    if (c.experts_smoothed >= 0) j["experts_smoothed"] = c.experts_smoothed;
    out[c.subgraph] = j;
  }
  return out;
}

ordered_json agreement_json(const eval::RouterAgreement& a) {
  return {{"exact", a.exact}, {"mean_overlap", a.mean_overlap}, {"tokens", a.tokens}};
}

ordered_json layer_json(const LayerReport& l, std::int64_t min_expert_tokens) {
  ordered_json r = {{"layer", l.layer}, {"relative_error", l.relative_error}};
  if (!l.smoothing.empty()) r["smoothing"] = smoothing_json(l.smoothing);
  if (!l.expert_tokens.empty()) {
    r["expert_tokens"] = l.expert_tokens;
    r["experts_without_tokens"] = l.experts_without_tokens();
    r["starved_experts"] = l.starved_experts(min_expert_tokens);
  }
  if (!l.anti_expert_tokens.empty()) r["anti_expert_tokens"] = l.anti_expert_tokens;
  if (!l.weight_fallbacks.empty()) {
    ordered_json fallbacks = ordered_json::array();
    for (const quant::WeightFallback& f : l.weight_fallbacks) {
      fallbacks.push_back({{"module", f.module}, {"reason", f.reason}});
    }
    r["weight_fallbacks"] = fallbacks;
  }
  if (l.router_agreement) r["router_agreement"] = agreement_json(*l.router_agreement);
  return r;
}

}  // namespace

std::vector<std::int64_t> LayerReport::experts_without_tokens() const { return starved_experts(1); }

std::vector<std::int64_t> LayerReport::starved_experts(std::int64_t min_tokens) const {
  std::vector<std::int64_t> out;
  for (std::size_t e = 0; e < expert_tokens.size(); ++e) {
    if (expert_tokens[e] < min_tokens) out.push_back(static_cast<std::int64_t>(e));
  }
  return out;
}

ordered_json to_json(const QuantReport& q) {
  ordered_json r;
  r["tool"] = "moeslim quant";
  r["recipe"] = q.recipe;
  r["recipe_file"] = q.recipe_file;
  r["apiversion"] = q.apiversion;
  r["steps"] = q.step_settings;
  r["quant_type"] = q.quant_type;
  r["model_type"] = q.model_type;
  r["model_path"] = q.model_path;
  r["format"] = q.format;
  r["rotation"] = q.rotation;
  r["smoothing"] = q.smoothing;
  r["anti_dataset"] = q.anti_dataset;
  r["calib_dataset"] = q.calib_dataset;
  r["float_precision"] = q.float_precision;
  r["batch_size"] = q.batch_size;
  r["stats_include_padding"] = q.stats_include_padding;
  r["layers"] = q.layers;
  r["anti_tokens"] = q.anti_tokens;
  r["calibration_tokens"] = q.calibration_tokens;
  r["starved_expert_min_tokens"] = q.starved_expert_min_tokens;
  ordered_json per_layer = ordered_json::array();
  for (const LayerReport& l : q.per_layer) per_layer.push_back(layer_json(l, q.starved_expert_min_tokens));
  r["per_layer"] = per_layer;
  if (q.evaluation) {
    const EvaluationReport& e = *q.evaluation;
    r["evaluation"] = {{"data", e.data},
                       {"tokens", e.tokens},
                       {"float_perplexity", e.float_perplexity},
                       {"quantized_perplexity", e.quantized_perplexity},
                       {"perplexity_change", e.perplexity_change},
                       {"mean_kl", e.mean_kl},
                       {"top1_agreement", e.top1_agreement}};
    if (!e.router_layers.empty()) {
      ordered_json router = agreement_json(e.router_total);
      router["per_layer"] = ordered_json::array();
      for (const auto& [layer, a] : e.router_layers) {
        ordered_json l = agreement_json(a);
        l["layer"] = layer;
        router["per_layer"].push_back(l);
      }
      r["evaluation"]["router_agreement"] = router;
    }
  }
  r["expected_output_bytes"] = q.expected_output_bytes;
  r["expected_peak_memory_bytes"] = q.expected_peak_memory_bytes;
  r["output_tensors"] = q.output_tensors;
  r["output_tensors_written_once"] = q.output_tensors_written_once;
  r["threads"] = q.threads;
  r["experts_per_group"] = q.experts_per_group;
  r["peak_rss_bytes"] = q.peak_rss_bytes;
  ordered_json timing = ordered_json::object();
  for (const auto& [phase, s] : q.timing_seconds) {
    if (phase != "total") timing[phase] = s;
  }
  if (q.timing_seconds.count("total") > 0) timing["total"] = q.timing_seconds.at("total");
  r["timing_seconds"] = timing;
  return r;
}

}  // namespace moeslim::pipeline
