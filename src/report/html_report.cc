#include "report/html_report.h"

#include <fmt/core.h>
#include <fmt/format.h>

#include <cmath>

#include "io/output_file.h"
#include "report/html_blocks.h"
#include "report/layer_sections.h"
#include "report/markup.h"
#include "report/report_data.h"
#include "report/report_findings.h"
#include "report/svg_chart.h"

namespace moeslim::report {
namespace {

// No external resources, so the page looks the same offline; system fonts only.
constexpr const char* kStyle = R"(
body { font-family: sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #999; margin-top: 1.6em; }
.verdict { font-size: 1.15em; font-weight: bold; }
.warning { border-left: 4px solid #a50f15; padding-left: 0.5em; }
.ok { border-left: 4px solid #999; padding-left: 0.5em; }
.absent { color: #555; font-style: italic; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.15em 0.5em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.8em 0; }
figcaption { font-size: 0.9em; color: #444; }
svg.chart { max-width: 100%; height: auto; }
pre { background: #f4f4f4; padding: 0.4em; overflow-x: auto; font-size: 0.85em; }
)";

// "layer 3" or "layers 3, 7".
std::string join_layers(const ReportData& data, const std::vector<std::size_t>& indices) {
  std::vector<std::int64_t> layers;
  for (const std::size_t i : indices) layers.push_back(data.layers[i].layer);
  return fmt::format("{} {}", layers.size() == 1 ? "layer" : "layers", fmt::join(layers, ", "));
}

std::string verdict_section(const ReportData& data, const Findings& f) {
  std::string html;
  if (data.evaluation) {
    const EvaluationData& e = *data.evaluation;
    std::string line =
        fmt::format("Perplexity {} → {} ({}) against the float model", format_number(e.float_perplexity, 6),
                    format_number(e.quantized_perplexity, 6), format_percent(e.perplexity_change, 2, true));
    if (e.mean_kl) line += fmt::format("; mean KL {} nats", format_number(*e.mean_kl, 3));
    if (e.top1_agreement) line += fmt::format("; top-1 agreement {}", format_percent(*e.top1_agreement, 2));
    if (!e.data.empty() || e.tokens) {
      line += " (on " + (e.data.empty() ? std::string("the evaluation text") : e.data) +
              (e.tokens ? fmt::format(", {} tokens", *e.tokens) : std::string()) + ")";
    }
    html += paragraph(line + ".", "verdict");
  } else if (f.median_error) {
    double sum = 0, largest = -1;
    std::size_t largest_at = 0, finite = 0;
    for (std::size_t i = 0; i < data.layers.size(); ++i) {
      const double v = data.layers[i].relative_error;
      if (!std::isfinite(v)) continue;
      sum += v;
      ++finite;
      if (v > largest) largest = v, largest_at = i;
    }
    html += paragraph(fmt::format("Mean relative layer error {} over {} layers; largest {} (layer {}).",
                                  format_number(sum / static_cast<double>(finite)), finite, format_number(largest),
                                  data.layers[largest_at].layer),
                      "verdict");
    html += absent("No evaluation in this report: perplexity, KL and top-1 need `moeslim quant --eval_data FILE`.");
  } else {
    html += paragraph("No layer has a finite relative error: there is nothing to judge this output by.", "verdict");
  }

  std::vector<std::string> concerns;
  if (!f.non_finite_errors.empty()) {
    concerns.push_back("Relative error not a number (NaN or infinite) in " +
                       join_layers(data, f.non_finite_errors) + ": this output is broken.");
  }
  if (data.evaluation &&
      !(std::isfinite(data.evaluation->quantized_perplexity) && std::isfinite(data.evaluation->perplexity_change))) {
    concerns.push_back("The quantized model's perplexity is not a number: this output is broken.");
  }
  if (!f.error_outliers.empty()) {
    concerns.push_back(
        fmt::format("Relative error above {} × the median in {}: candidates to keep in higher "
                    "precision.",
                    format_number(kStandsOutFactor), join_layers(data, f.error_outliers)));
  }
  if (!f.router_outliers.empty()) {
    concerns.push_back(
        fmt::format("The router's expert choice changed for more than {} × the median share of tokens "
                    "in {}.",
                    format_number(kStandsOutFactor), join_layers(data, f.router_outliers)));
  }
  if (f.starved_experts > 0) {
    concerns.push_back(
        fmt::format("{} of {} experts starved of calibration tokens (fewer than {}): quantized from "
                    "their weights alone.",
                    f.starved_experts, f.experts_seen, data.starved_expert_min_tokens));
  }
  if (f.weight_fallbacks > 0) {
    concerns.push_back(fmt::format("{} linear{} left to the weight method's data-free fallback.", f.weight_fallbacks,
                                   f.weight_fallbacks == 1 ? "" : "s"));
  }
  if (data.peak_rss_bytes && data.expected_peak_memory_bytes &&
      *data.peak_rss_bytes > *data.expected_peak_memory_bytes) {
    concerns.push_back(fmt::format("Peak memory {} was above the estimate of {}.", format_bytes(*data.peak_rss_bytes),
                                   format_bytes(*data.expected_peak_memory_bytes)));
  }
  if (concerns.empty()) {
    html += paragraph(fmt::format("Nothing stands out: no layer above {} × the median error, no starved expert, no "
                                  "weight fallback.",
                                  format_number(kStandsOutFactor)),
                      "ok");
  } else {
    html += paragraph("To look at before shipping:");
    html += bullet_list(concerns, "warning");
  }
  return section("verdict", "Verdict", html);
}

std::string resources_section(const ReportData& data) {
  std::string html;
  if (data.timing_seconds.empty()) {
    html += absent("Phase times: not in this report.");
  } else {
    BarChart chart;
    chart.id = "timing-chart";
    chart.title = "Time per phase";
    chart.value_axis = "wall-clock time (seconds)";
    chart.value_text = [](double v) { return format_number(v, 3); };
    std::vector<std::vector<std::string>> rows;
    for (const auto& [phase, seconds] : data.timing_seconds) {
      chart.bars.push_back({phase, seconds, false});
      const std::string share = data.total_seconds && *data.total_seconds > 0
                                    ? format_percent(seconds / *data.total_seconds, 1)
                                    : std::string("—");
      rows.push_back({phase, format_seconds(seconds), share});
    }
    if (data.total_seconds) {
      html += paragraph(fmt::format("The run took {} in all.", format_seconds(*data.total_seconds)));
      rows.push_back({"total", format_seconds(*data.total_seconds), ""});
    }
    html += figure(svg_bar_chart(chart), "Wall-clock time of each phase.");
    html += details("The numbers", table({"phase", "time", "share of total"}, rows));
  }
  if (data.peak_rss_bytes && data.expected_peak_memory_bytes) {
    const double peak = *data.peak_rss_bytes, estimate = *data.expected_peak_memory_bytes;
    const bool over = peak > estimate;
    html += paragraph(fmt::format("Peak resident memory {} against the estimate of {} that quant printed before it "
                                  "started ({} of it).",
                                  format_bytes(peak), format_bytes(estimate),
                                  estimate > 0 ? format_percent(peak / estimate, 0) : std::string("—")),
                      over ? "warning" : "");
    constexpr double kGiB = 1024.0 * 1024 * 1024;
    BarChart chart;
    chart.id = "memory-chart";
    chart.title = "Peak memory against the estimate";
    chart.value_axis = "memory (GiB)";
    chart.bars = {{"estimate", estimate / kGiB, false}, {"peak RSS", peak / kGiB, over}};
    chart.marked_legend = over ? "peak above the estimate" : "";
    chart.value_text = [](double v) { return format_number(v, 3); };
    html += figure(svg_bar_chart(chart), "Measured peak resident memory (RSS) and the estimate made before the run.");
  } else if (data.peak_rss_bytes) {
    html += paragraph(fmt::format("Peak resident memory {}; the estimate is not in this report.",
                                  format_bytes(*data.peak_rss_bytes)));
  } else {
    html += absent("Peak memory: not in this report.");
  }
  if (data.expected_output_bytes) {
    html += paragraph(fmt::format("Expected output size {} (checked against the free disk space before the run).",
                                  format_bytes(*data.expected_output_bytes)));
  }
  return section("resources", "Time and memory", html);
}

std::string recipe_section(const ReportData& data) {
  std::string html;
  if (data.run_settings.empty()) {
    html += absent("The run's settings: not in this report.");
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, value] : data.run_settings) rows.push_back({key, value});
    html += table({"setting", "value"}, rows, "settings");
  }
  if (!data.steps_in_report) {
    html += absent("The recipe's steps: not in this report.");
  } else {
    html += paragraph(fmt::format("The recipe's {} step{}, in the order run, with their settings:", data.steps.size(),
                                  data.steps.size() == 1 ? "" : "s"));
    html += "<ol class=\"steps\">";
    for (const RecipeStep& s : data.steps) {
      html += "<li><b>" + escape_xml(s.step) + "</b>";
      if (!s.settings_json.empty()) html += "<pre>" + escape_xml(s.settings_json) + "</pre>";
      html += "</li>";
    }
    html += "</ol>";
  }
  return section("recipe", "The recipe as run", html);
}

std::string setting(const ReportData& data, const std::string& key) {
  for (const auto& [k, v] : data.run_settings) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace

std::string render_quant_report_html(const nlohmann::ordered_json& report) {
  const ReportData data = read_report_data(report);
  const Findings findings = find_findings(data);
  const std::string recipe = setting(data, "recipe");
  const std::string model = setting(data, "model_path");
  const std::string title =
      "moeslim quant report" + (recipe.empty() ? "" : ": " + recipe) + (model.empty() ? "" : " on " + model);
  std::string page =
      "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\" xml:lang=\"en\">\n<head>\n"
      "<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
      "<title>" +
      escape_xml(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  page += "<h1>" + escape_xml(title) + "</h1>\n";
  const std::string format = setting(data, "format");
  page += paragraph(fmt::format("{} layers{}. Written by moeslim from quant_report.json in the same directory.",
                                data.layers.size(), format.empty() ? "" : ", output format " + format)) +
          "\n";
  page += verdict_section(data, findings);
  page += layer_error_section(data, findings);
  page += router_section(data, findings);
  page += expert_tokens_section(data, findings);
  page += smoothing_section(data, findings);
  page += resources_section(data);
  page += recipe_section(data);
  page += "</body>\n</html>\n";
  return page;
}

void write_quant_report_html(const nlohmann::ordered_json& report, const std::filesystem::path& path) {
  io::write_text_file_atomically(path, render_quant_report_html(report));
}

}  // namespace moeslim::report
