#include "report/layer_sections.h"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/html_blocks.h"
#include "report/markup.h"
#include "report/svg_chart.h"

namespace moeslim::report {
namespace {

std::string layer_name(const LayerData& l) { return "layer " + std::to_string(l.layer); }

// "layers 3 (0.031), 7 (0.029)": the named layers with one value each.
template <typename Value>
std::string layer_list(const ReportData& data, const std::vector<std::size_t>& indices, Value value) {
  std::vector<std::string> parts;
  for (const std::size_t i : indices) parts.push_back(fmt::format("{} ({})", data.layers[i].layer, value(i)));
  return (indices.size() == 1 ? "layer " : "layers ") + fmt::format("{}", fmt::join(parts, ", "));
}

bool contains(const std::vector<std::size_t>& v, std::size_t i) { return std::find(v.begin(), v.end(), i) != v.end(); }

std::string optional_text(const std::optional<double>& v, std::string (*format)(double)) {
  return v ? format(*v) : "—";
}

std::string percent(double fraction) { return format_percent(fraction, 2); }

}  // namespace

std::string layer_error_section(const ReportData& data, const Findings& f) {
  const std::string title = "Relative error per layer";
  if (data.layers.empty()) return section("layer-error", title, absent("The report has no layers."));
  std::string html = paragraph(
      "Each layer's output error on the calibration set: ‖quantized − float‖ / ‖float − input‖ (lower is better).");
  const std::optional<double> threshold =
      f.median_error ? std::optional<double>(kStandsOutFactor * *f.median_error) : std::nullopt;
  if (f.error_outliers.empty()) {
    html += paragraph(fmt::format("Median {}. No layer stands out (none above {} × the median).",
                                  optional_text(f.median_error, [](double v) { return format_number(v); }),
                                  format_number(kStandsOutFactor)));
  } else {
    html += paragraph(
        fmt::format("Median {}. Standing out (hatched), above {} × the median = {}: {}. These are the candidates to "
                    "keep in higher precision.",
                    format_number(*f.median_error), format_number(kStandsOutFactor), format_number(*threshold),
                    layer_list(data, f.error_outliers,
                               [&](std::size_t i) { return format_number(data.layers[i].relative_error); })),
        "warning");
  }
  BarChart chart;
  chart.id = "layer-error-chart";
  chart.title = title;
  chart.value_axis = "relative error (‖quantized − float‖ / ‖float − input‖, no unit)";
  std::vector<std::vector<std::string>> rows;
  for (std::size_t i = 0; i < data.layers.size(); ++i) {
    const LayerData& l = data.layers[i];
    const bool marked = contains(f.error_outliers, i);
    chart.bars.push_back({layer_name(l), l.relative_error, marked});
    rows.push_back({std::to_string(l.layer), format_number(l.relative_error),
                    f.median_error && *f.median_error > 0 ? format_number(l.relative_error / *f.median_error, 3) : "—",
                    marked ? "stands out" : ""});
  }
  if (threshold) {
    chart.reference = threshold;
    chart.reference_label = fmt::format("{} × median", format_number(kStandsOutFactor));
  }
  chart.marked_legend = fmt::format("above {} × the median", format_number(kStandsOutFactor));
  html += figure(svg_bar_chart(chart), "Relative error of each layer; dashed: twice the median.");
  html += details("The numbers", table({"layer", "relative error", "× median", ""}, rows));
  std::vector<std::vector<std::string>> fallbacks;
  for (const LayerData& l : data.layers) {
    for (const WeightFallback& w : l.weight_fallbacks)
      fallbacks.push_back({std::to_string(l.layer), w.module, w.reason});
  }
  if (!fallbacks.empty()) {
    html +=
        paragraph(fmt::format("{} linear{} quantized with the weight method's data-free fallback:", fallbacks.size(),
                              fallbacks.size() == 1 ? " was" : "s were"),
                  "warning");
    html += table({"layer", "module", "reason"}, fallbacks, "fallbacks");
  }
  return section("layer-error", title, html);
}

std::string router_section(const ReportData& data, const Findings& f) {
  const std::string title = "Router agreement per layer";
  const bool per_layer = std::any_of(data.layers.begin(), data.layers.end(),
                                     [](const LayerData& l) { return l.router_agreement.has_value(); });
  // A pointer, not a copy: GCC 12 warns (wrongly) that a copied optional may be used uninitialized.
  const RouterAgreement* overall =
      data.evaluation && data.evaluation->router_agreement ? &*data.evaluation->router_agreement : nullptr;
  if (!per_layer && overall == nullptr) {
    return section("router-agreement", title,
                   absent("Router agreement: not measured in this report (whether quantization changed which "
                          "experts the router picks)."));
  }
  std::string html = paragraph(
      "Whether quantization changed which experts the router picks: the share of tokens whose top-k expert set is "
      "unchanged (exact), and the mean share of the top-k kept (overlap).");
  if (overall != nullptr) {
    html += paragraph(fmt::format("On the evaluation text: exact {}, mean overlap {}.", percent(overall->exact),
                                  optional_text(overall->mean_overlap, percent)));
  }
  if (!per_layer) {
    html += absent("Per-layer agreement on the calibration tokens: not measured in this report.");
  } else {
    if (f.router_outliers.empty()) {
      html +=
          paragraph(fmt::format("No layer stands out (none changes the expert set of more than {} × the median "
                                "share of tokens).",
                                format_number(kStandsOutFactor)));
    } else {
      html += paragraph(
          fmt::format("Standing out (hatched), the expert set changed for more than {} × the median "
                      "share of tokens ({}): {}.",
                      format_number(kStandsOutFactor), percent(*f.median_router_disagreement),
                      layer_list(data, f.router_outliers,
                                 [&](std::size_t i) { return percent(1 - data.layers[i].router_agreement->exact); })),
          "warning");
    }
    // Drawn as the share that changed: agreements near 100 % would all be full bars.
    BarChart chart;
    chart.id = "router-chart";
    chart.title = title;
    chart.value_axis = "calibration tokens whose top-k expert set changed (1 − exact, %)";
    chart.marked_legend = fmt::format("above {} × the median", format_number(kStandsOutFactor));
    chart.value_text = [](double v) { return format_percent(v, 1); };
    for (std::size_t i = 0; i < data.layers.size(); ++i) {
      const LayerData& l = data.layers[i];
      if (l.router_agreement)
        chart.bars.push_back({layer_name(l), 1 - l.router_agreement->exact, contains(f.router_outliers, i)});
    }
    html += figure(svg_bar_chart(chart), "Share of calibration tokens routed to a different expert set, per layer.");
  }
  const std::vector<RouterAgreement>& eval_layers =
      data.evaluation ? data.evaluation->router_agreement_per_layer : std::vector<RouterAgreement>();
  std::vector<std::vector<std::string>> rows;
  const std::size_t n = std::max(data.layers.size(), eval_layers.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::string> row{i < data.layers.size() ? std::to_string(data.layers[i].layer) : std::to_string(i)};
    const std::optional<RouterAgreement> a = i < data.layers.size() ? data.layers[i].router_agreement : std::nullopt;
    row.push_back(a ? percent(a->exact) : "—");
    row.push_back(a ? optional_text(a->mean_overlap, percent) : "—");
    row.push_back(a && a->tokens ? std::to_string(*a->tokens) : "—");
    if (!eval_layers.empty()) {
      row.push_back(i < eval_layers.size() ? percent(eval_layers[i].exact) : "—");
      row.push_back(i < eval_layers.size() ? optional_text(eval_layers[i].mean_overlap, percent) : "—");
    }
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"layer", "exact (calibration)", "mean overlap", "tokens"};
  if (!eval_layers.empty()) {
    header.push_back("exact (evaluation)");
    header.push_back("mean overlap (evaluation)");
  }
  html += details("The numbers", table(header, rows));
  return section("router-agreement", title, html);
}

std::string expert_tokens_section(const ReportData& data, const Findings& f) {
  const std::string title = "Calibration tokens per expert";
  if (f.experts_seen == 0) {
    return section("expert-tokens", title, absent("Calibration tokens per expert: not in this report."));
  }
  const std::int64_t min_tokens = data.starved_expert_min_tokens;
  const std::string rule =
      min_tokens == 1 ? "no calibration token at all" : fmt::format("fewer than {} calibration tokens", min_tokens);
  std::string html = paragraph(fmt::format(
      "Tokens of the calibration set routed to each expert (a darker cell: more tokens; logarithmic scale). Crossed "
      "out: starved experts, with {} ({}); their quantization rests on their weights alone, not on data.",
      rule, data.starved_threshold_in_report ? "starved_expert_min_tokens in the report" : "the default threshold"));
  HeatMap map;
  map.id = "expert-tokens-map";
  map.title = title;
  map.row_axis = "layer";
  map.column_axis = "expert (index)";
  map.value_name = "tokens";
  map.marked_legend = "starved: " + rule;
  std::vector<std::string> starved_items;
  std::vector<std::vector<std::string>> rows;
  for (std::size_t i = 0; i < data.layers.size(); ++i) {
    const LayerData& l = data.layers[i];
    if (l.expert_tokens.empty()) continue;
    map.row_labels.push_back(std::to_string(l.layer));
    map.values.emplace_back(l.expert_tokens.begin(), l.expert_tokens.end());
    map.marked.push_back(f.starved[i]);
    std::vector<std::string> starved;
    for (std::size_t e = 0; e < l.expert_tokens.size(); ++e) {
      if (f.starved[i][e]) starved.push_back(fmt::format("{} ({})", e, l.expert_tokens[e]));
    }
    if (!starved.empty()) {
      starved_items.push_back(
          fmt::format("{}: expert{} {}", layer_name(l), starved.size() == 1 ? "" : "s", fmt::join(starved, ", ")));
    }
    std::vector<std::int64_t> sorted = l.expert_tokens;
    std::sort(sorted.begin(), sorted.end());
    rows.push_back({std::to_string(l.layer), std::to_string(sorted.size()), std::to_string(sorted.front()),
                    std::to_string(sorted[sorted.size() / 2]), std::to_string(sorted.back()),
                    std::to_string(starved.size())});
  }
  html += figure(svg_heat_map(map), "Calibration tokens per expert (columns) and layer (rows); crossed out: starved.");
  if (starved_items.empty()) {
    html += paragraph(fmt::format("No starved expert: each of the {} experts had at least {} token{}.", f.experts_seen,
                                  min_tokens, min_tokens == 1 ? "" : "s"));
  } else {
    html += paragraph(fmt::format("{} of {} experts starved (expert index, with its token count):", f.starved_experts,
                                  f.experts_seen),
                      "warning");
    html += bullet_list(starved_items, "starved");
  }
  html += details("Per layer", table({"layer", "experts", "fewest tokens", "median", "most", "starved"}, rows));
  return section("expert-tokens", title, html);
}

std::string smoothing_section(const ReportData& data, const Findings& f) {
  const std::string title = "Smoothing: α and β per layer and subgraph";
  std::vector<std::vector<std::string>> rows;
  bool any_searched = false;
  for (const LayerData& l : data.layers) {
    for (const SubgraphChoice& c : l.smoothing) {
      any_searched = any_searched || c.searched.value_or(false) || !c.search.empty();
      rows.push_back({std::to_string(l.layer), c.subgraph, format_number(c.alpha, 3), format_number(c.beta, 3),
                      c.searched ? (*c.searched ? "searched" : "fixed") : "—", c.error ? format_number(*c.error) : "—",
                      c.experts_smoothed ? std::to_string(*c.experts_smoothed) : "—"});
    }
  }
  if (rows.empty()) {
    return section("smoothing", title,
                   absent("Smoothing choices: not in this report (the recipe has no smoothing step)."));
  }
  std::string html = paragraph(
      "What each smoothing step chose: the exponents α and β of the smoothing scales, whether the search chose them "
      "or the recipe fixed them, and the search's best error.");
  html += table({"layer", "subgraph", "α", "β", "chosen by", "search error", "experts smoothed"}, rows, "smoothing");
  if (!f.curve_layer) {
    html += absent(any_searched ? "The search's loss curve: not measured in this report."
                                : "No search ran (the recipe fixed α and β), so there is no loss curve.");
    return section("smoothing", title, html);
  }
  const LayerData& l = data.layers[*f.curve_layer];
  html += paragraph(fmt::format(
      "The search's loss curve for {}, the layer with the largest relative error among those with a recorded search: "
      "the error at each (α, β) in the order searched.",
      layer_name(l)));
  for (const SubgraphChoice& c : l.smoothing) {
    if (c.search.empty()) continue;
    LineChart chart;
    chart.id = "search-" + c.subgraph;
    chart.title = fmt::format("{} {}: search error per grid point", layer_name(l), c.subgraph);
    chart.x_axis = "grid point, in the order searched";
    chart.y_axis = "error (no unit)";
    std::vector<std::vector<std::string>> points;
    for (std::size_t i = 0; i < c.search.size(); ++i) {
      const SearchPoint& p = c.search[i];
      chart.points.push_back({static_cast<double>(i + 1), p.error});
      // The choice is the last grid point with the chosen α/β (msModelSlim keeps the last of tied errors).
      if (p.alpha == c.alpha && p.beta == c.beta) chart.marked = i;
      points.push_back(
          {std::to_string(i + 1), format_number(p.alpha, 3), format_number(p.beta, 3), format_number(p.error, 5)});
    }
    if (!chart.marked) {  // a choice that is not on the curve: ring the lowest error instead, and say so
      std::size_t best = 0;
      for (std::size_t i = 1; i < c.search.size(); ++i) {
        if (c.search[i].error < c.search[best].error) best = i;
      }
      chart.marked = best;
      chart.marked_label = fmt::format("lowest: α {}, β {}", format_number(c.search[best].alpha, 3),
                                       format_number(c.search[best].beta, 3));
    } else {
      chart.marked_label = fmt::format("chosen: α {}, β {}", format_number(c.alpha, 3), format_number(c.beta, 3));
    }
    html += figure(svg_line_chart(chart), fmt::format("{}, subgraph {}: error per grid point; ringed: {}.",
                                                      layer_name(l), c.subgraph, chart.marked_label));
    html += details(fmt::format("The {} grid points", points.size()), table({"#", "α", "β", "error"}, points));
  }
  return section("smoothing", title, html);
}

}  // namespace moeslim::report
