// What the page points out, worked out once from the report: the verdict lists these and the sections mark them.
// "Stands out" is one rule throughout: more than twice the median over the layers (of the relative error, or of
// the router's disagreement 1 − exact). Such layers are the candidates to keep in higher precision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "report/report_data.h"

namespace moeslim::report {

inline constexpr double kStandsOutFactor = 2.0;

struct Findings {
  std::optional<double> median_error;          // over the layers whose error is finite
  std::vector<std::size_t> error_outliers;     // indices into ReportData::layers
  std::vector<std::size_t> non_finite_errors;  // layers whose relative error is NaN or infinite
  std::vector<std::vector<bool>> starved;      // per layer, per expert: fewer tokens than the threshold
  std::int64_t starved_experts = 0;
  std::int64_t experts_seen = 0;  // experts with a token count in the report
  std::optional<double> median_router_disagreement;
  std::vector<std::size_t> router_outliers;  // indices into ReportData::layers
  std::size_t weight_fallbacks = 0;
  std::optional<std::size_t> curve_layer;  // the layer whose search curve is drawn (largest error with one)
};

Findings find_findings(const ReportData& data);

// The median of the finite values, or nullopt when there are none.
std::optional<double> median_of(std::vector<double> values);

}  // namespace moeslim::report
