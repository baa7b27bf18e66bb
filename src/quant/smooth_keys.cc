#include "quant/smooth_keys.h"

#include <algorithm>

namespace moeslim::quant {

bool SmoothKeys::has(const std::string& subgraph) const {
  return std::find(subgraphs.begin(), subgraphs.end(), subgraph) != subgraphs.end();
}

ExpertSmoothingParams SmoothKeys::expert_params() const {
  ExpertSmoothingParams p;
  p.moe_input = has("moe-input");
  p.up_down = has("up-down");
  p.alpha = alpha.value_or(0.5);
  p.beta = beta.value_or(1.0 - p.alpha);
  return p;
}

SmoothKeys parse_smooth_keys(const StepInput& in, const io::yaml::MapReader& m) {
  const io::yaml::Source& src = in.src;
  SmoothKeys k;
  k.subgraphs_path = m.path("subgraphs");
  k.subgraphs_node = m.require("subgraphs");
  const YAML::Node& sg = k.subgraphs_node;
  if (!sg.IsSequence() || sg.size() == 0) {
    src.fail(k.subgraphs_path,
             "expected a non-empty list of norm-linear, ov, moe-input, up-down, got " + io::yaml::describe(sg), sg);
  }
  for (std::size_t i = 0; i < sg.size(); ++i) {
    const std::string path = io::yaml::index_path(k.subgraphs_path, i);
    const std::string g = src.as_choice(sg[i], path, {"norm-linear", "ov", "moe-input", "up-down"});
    if (k.has(g)) src.fail(path, "'" + sg[i].Scalar() + "' is listed twice", sg[i]);
    k.subgraphs.push_back(g);
  }
  if (m.has("alpha")) k.alpha = src.as_number(m.get("alpha"), m.path("alpha"), 0.0, 1.0);
  if (m.has("beta")) k.beta = src.as_number(m.get("beta"), m.path("beta"), 0.0, 1.0);
  return k;
}

}  // namespace moeslim::quant
