#include "report/report_findings.h"

#include <algorithm>
#include <cmath>

namespace moeslim::report {
namespace {

// Indices whose value is above kStandsOutFactor × the median (and above 0, so that a median of 0 does not mark
// every layer that is not exactly 0 by a rounding).
std::vector<std::size_t> standing_out(const std::vector<std::optional<double>>& values, std::optional<double> median) {
  std::vector<std::size_t> out;
  if (!median) return out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] && std::isfinite(*values[i]) && *values[i] > 0 && *values[i] > kStandsOutFactor * *median) {
      out.push_back(i);
    }
  }
  return out;
}

}  // namespace

std::optional<double> median_of(std::vector<double> values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

Findings find_findings(const ReportData& data) {
  Findings f;
  std::vector<std::optional<double>> errors, disagreements;
  std::vector<double> finite_errors, finite_disagreements;
  for (std::size_t i = 0; i < data.layers.size(); ++i) {
    const LayerData& l = data.layers[i];
    errors.emplace_back(l.relative_error);
    finite_errors.push_back(l.relative_error);
    if (!std::isfinite(l.relative_error)) f.non_finite_errors.push_back(i);
    if (l.router_agreement) {
      disagreements.emplace_back(1 - l.router_agreement->exact);
      finite_disagreements.push_back(1 - l.router_agreement->exact);
    } else {
      disagreements.emplace_back(std::nullopt);
    }
    std::vector<bool> starved(l.expert_tokens.size());
    for (std::size_t e = 0; e < l.expert_tokens.size(); ++e) {
      starved[e] = l.expert_tokens[e] < data.starved_expert_min_tokens;
      f.starved_experts += starved[e] ? 1 : 0;
    }
    f.experts_seen += static_cast<std::int64_t>(l.expert_tokens.size());
    f.starved.push_back(std::move(starved));
    f.weight_fallbacks += l.weight_fallbacks.size();
    const bool has_curve =
        std::any_of(l.smoothing.begin(), l.smoothing.end(), [](const SubgraphChoice& c) { return !c.search.empty(); });
    // NaN compares false, so a layer with a NaN error is never preferred over one with a number.
    if (has_curve && (!f.curve_layer || l.relative_error > data.layers[*f.curve_layer].relative_error ||
                      !std::isfinite(data.layers[*f.curve_layer].relative_error))) {
      f.curve_layer = i;
    }
  }
  f.median_error = median_of(finite_errors);
  f.error_outliers = standing_out(errors, f.median_error);
  f.median_router_disagreement = median_of(finite_disagreements);
  f.router_outliers = standing_out(disagreements, f.median_router_disagreement);
  return f;
}

}  // namespace moeslim::report
