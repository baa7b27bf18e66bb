// The keys the smoothing steps share (`smooth: {method, subgraphs, alpha, beta}`): each step reads them here and
// then checks what its own method allows.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "quant/expert_smoothing.h"
#include "quant/step_registry.h"

namespace moeslim::quant {

struct SmoothKeys {
  std::vector<std::string> subgraphs;  // as listed: norm-linear, ov, moe-input, up-down; no duplicates
  std::optional<double> alpha;         // in [0, 1]
  std::optional<double> beta;          // in [0, 1]
  std::string subgraphs_path;          // for errors
  YAML::Node subgraphs_node;
  bool has(const std::string& subgraph) const;
  // moe-input / up-down with the step's α (default 0.5) and β (default 1 − α).
  ExpertSmoothingParams expert_params() const;
};

// Reads subgraphs, alpha and beta (when present); the step has already read `method`.
SmoothKeys parse_smooth_keys(const StepInput& input, const io::yaml::MapReader& keys);

}  // namespace moeslim::quant
