#include "recipe/process_parser.h"

#include <algorithm>
#include <array>
#include <climits>

#include <fmt/core.h>

#include "core/error.h"

namespace moeslim::recipe::detail {
namespace {

// Steps in the only order the pipelines run them: rotation is a change of basis of the float model (§5), smoothing
// works on the rotated weights, and quantization consumes the result.
constexpr std::array<const char*, 3> kStepOrder = {"rotate", "smooth", "quantize"};

// Router names probed when checking that a group leaves the router float: every layer index a Qwen3-MoE model
// has (Qwen3-235B has 94 layers), so a layer-specific glob is caught too.
constexpr int kRouterProbeLayers = 128;

void parse_rotate(const Source& src, const YAML::Node& node, const std::string& path, Recipe& r) {
  MapReader m(src, node, path, {"method"});
  if (m.has("method")) src.as_choice(m.get("method"), m.path("method"), {"hadamard"});
  r.rotate = true;
}

Subgraph parse_subgraph(const Source& src, const YAML::Node& node, const std::string& path) {
  const std::string v = src.as_choice(node, path, {"norm-linear", "ov", "moe-input", "up-down"});
  if (v == "norm-linear") return Subgraph::kNormLinear;
  if (v == "ov") return Subgraph::kOv;
  if (v == "moe-input") return Subgraph::kMoeInput;
  return Subgraph::kUpDown;
}

void parse_smooth(const Source& src, const YAML::Node& node, const std::string& path, Recipe& r) {
  MapReader m(src, node, path, {"method", "subgraphs", "alpha", "beta"});
  SmoothStep s;
  const std::string method_path = m.path("method");
  const YAML::Node method_node = m.require("method");
  const std::string method = src.as_choice(method_node, method_path, {"m4", "flex_smooth"});
  if (method == "m4") {
    if (r.api == ApiVersion::kV1) {
      src.fail(method_path,
               "method m4 is the v0 anti-outlier (apiversion modelslim_v0); modelslim_v1 recipes use flex_smooth",
               method_node);
    }
    s.method = SmoothMethod::kM4;
  } else {
    if (r.api == ApiVersion::kV0) {
      src.fail(method_path,
               "method flex_smooth is a v1 processor (apiversion modelslim_v1); modelslim_v0 recipes use m4",
               method_node);
    }
    s.method = SmoothMethod::kFlexSmooth;
  }

  const std::string sg_path = m.path("subgraphs");
  const YAML::Node sg = m.require("subgraphs");
  if (!sg.IsSequence() || sg.size() == 0) {
    src.fail(sg_path, "expected a non-empty list of norm-linear, ov, moe-input, up-down, got " + describe(sg), sg);
  }
  for (std::size_t i = 0; i < sg.size(); ++i) {
    const Subgraph g = parse_subgraph(src, sg[i], index_path(sg_path, i));
    if (s.has(g)) src.fail(index_path(sg_path, i), "'" + sg[i].Scalar() + "' is listed twice", sg[i]);
    s.subgraphs.push_back(g);
  }
  if (s.method == SmoothMethod::kM4 && !(s.has(Subgraph::kNormLinear) && s.has(Subgraph::kOv))) {
    src.fail(sg_path,
             "m4 always smooths norm-linear and ov together (spec §3.1): the list must contain both, optionally "
             "with moe-input and up-down",
             sg);
  }

  if (m.has("alpha")) s.alpha = src.as_number(m.get("alpha"), m.path("alpha"), 0.0, 1.0);
  if (m.has("beta")) {
    if (s.method == SmoothMethod::kM4) {
      src.fail(m.path("beta"), "beta is a flex_smooth parameter; m4 takes only alpha", m.get("beta"));
    }
    s.beta = src.as_number(m.get("beta"), m.path("beta"), 0.0, 1.0);
  }
  r.smooth = std::move(s);
}

quant::QuantScheme parse_scheme(const Source& src, const YAML::Node& node, const std::string& path,
                                ApiVersion api) {
  // "float" gets its own message: it is the natural thing to write, and the answer (leave the linear out) is not
  // obvious from the list of allowed schemes.
  if (node.IsScalar() && (node.Scalar() == "float" || node.Scalar() == "FLOAT")) {
    src.fail(path,
             "'float' is not a quantization scheme: linears that no group claims stay float, so leave them out "
             "of every include (or exclude them); allowed: w8a8, w8a8_dynamic, w4a8_dynamic",
             node);
  }
  const std::string v = src.as_choice(node, path, {"w8a8", "w8a8_dynamic", "w4a8_dynamic"});
  if (v == "w8a8") {
    if (api == ApiVersion::kV1) {
      src.fail(path,
               "w8a8 (static activations) needs the v0 static calibration: use apiversion modelslim_v0, or "
               "w8a8_dynamic / w4a8_dynamic in a modelslim_v1 recipe",
               node);
    }
    return quant::QuantScheme::kW8A8;
  }
  if (v == "w4a8_dynamic") {
    if (api == ApiVersion::kV0) {
      src.fail(path,
               "w4a8_dynamic is written only by the v1 pipeline: use apiversion modelslim_v1, or w8a8 / "
               "w8a8_dynamic in a modelslim_v0 recipe",
               node);
    }
    return quant::QuantScheme::kW4A8Dynamic;
  }
  return quant::QuantScheme::kW8A8Dynamic;
}

std::vector<std::string> parse_globs(const Source& src, const YAML::Node& node, const std::string& path,
                                     bool non_empty) {
  std::vector<std::string> globs = src.as_string_list(node, path, non_empty);
  for (std::size_t i = 0; i < globs.size(); ++i) {
    try {
      glob_match(globs[i], "");
    } catch (const Error& e) {
      src.fail(index_path(path, i), e.detail(), node[i]);
    }
  }
  return globs;
}

QuantGroup parse_group(const Source& src, const YAML::Node& node, const std::string& path, ApiVersion api) {
  MapReader m(src, node, path, {"include", "exclude", "scheme", "weight", "ssz_steps"});
  QuantGroup g;
  g.include = parse_globs(src, m.require("include"), m.path("include"), /*non_empty=*/true);
  if (m.has("exclude")) g.exclude = parse_globs(src, m.get("exclude"), m.path("exclude"), /*non_empty=*/false);
  g.scheme = parse_scheme(src, m.require("scheme"), m.path("scheme"), api);
  if (m.has("weight")) {
    const std::string w = src.as_choice(m.get("weight"), m.path("weight"), {"minmax", "ssz"});
    if (w == "ssz") {
      if (api == ApiVersion::kV0) {
        src.fail(m.path("weight"),
                 "weight ssz is a v1 quantizer (apiversion modelslim_v1); modelslim_v0 recipes use minmax",
                 m.get("weight"));
      }
      g.weight = WeightMethod::kSsz;
    }
  }
  if (m.has("ssz_steps")) {
    if (g.weight != WeightMethod::kSsz) {
      src.fail(m.path("ssz_steps"), "ssz_steps applies only to weight: ssz", m.get("ssz_steps"));
    }
    g.ssz_steps = static_cast<int>(src.as_int(m.get("ssz_steps"), m.path("ssz_steps"), 1, INT_MAX));
  }
  for (int layer = 0; layer < kRouterProbeLayers; ++layer) {
    const std::string router = fmt::format("model.layers.{}.mlp.gate", layer);
    if (g.matches(router)) {
      src.fail(path,
               "this group claims the router '" + router +
                   "', but the router stays float (msModelSlim never quantizes mlp.gate): add \"*.mlp.gate\" to "
                   "the group's exclude",
               node);
    }
  }
  return g;
}

void parse_quantize(const Source& src, const YAML::Node& node, const std::string& path, Recipe& r) {
  if (!node.IsSequence()) {
    src.fail(path, "expected a list of groups (include, exclude, scheme, weight, ssz_steps), got " + describe(node),
             node);
  }
  if (node.size() == 0) {
    src.fail(path, "the quantize list is empty: give at least one group with include and scheme", node);
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    r.groups.push_back(parse_group(src, node[i], index_path(path, i), r.api));
  }
  // int4 is written with a scale_bias whose form exists only for gate/up/down_proj (docs/msmodelslim-format.md §5), so
  // the group that wins an attention linear must not be w4a8_dynamic.
  for (int layer = 0; layer < kRouterProbeLayers; ++layer) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      const std::string module = fmt::format("model.layers.{}.self_attn.{}", layer, proj);
      const QuantGroup* g = r.group_for(module);
      if (g != nullptr && g->scheme == quant::QuantScheme::kW4A8Dynamic) {
        const auto at = static_cast<std::size_t>(g - r.groups.data());
        src.fail(index_path(path, at),
                 "this group gives '" + module + "' int4 weights (w4a8_dynamic), which msModelSlim's layout has "
                 "only for the MLP projections (gate/up/down_proj): claim attention with an earlier "
                 "w8a8_dynamic group or exclude it",
                 node[at]);
      }
    }
  }
}

}  // namespace

void parse_process(const Source& src, const YAML::Node& node, Recipe& recipe) {
  const std::string path = "process";
  if (!node.IsSequence()) {
    src.fail(path, "expected a list of steps (rotate, smooth, quantize), got " + describe(node), node);
  }
  std::array<int, kStepOrder.size()> first_at{-1, -1, -1};
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string step_path = index_path(path, i);
    MapReader step(src, node[i], step_path, {"rotate", "smooth", "quantize"});
    if (step.size() != 1) {
      src.fail(step_path, "each step is a mapping with exactly one key: rotate, smooth or quantize", node[i]);
    }
    const std::string kind = step.first_key();
    const std::size_t k = static_cast<std::size_t>(
        std::find_if(kStepOrder.begin(), kStepOrder.end(), [&](const char* s) { return kind == s; }) -
        kStepOrder.begin());
    const std::string kind_path = step.path(kind);
    if (first_at[k] >= 0) {
      src.fail(kind_path,
               fmt::format("step '{}' appears twice (first at process[{}]); each kind may appear at most once", kind,
                           first_at[k]),
               node[i]);
    }
    for (std::size_t later = k + 1; later < kStepOrder.size(); ++later) {
      if (first_at[later] >= 0) {
        src.fail(kind_path,
                 fmt::format("'{}' must come before '{}' (process[{}]): steps run in the order rotate, smooth, "
                             "quantize",
                             kind, kStepOrder[later], first_at[later]),
                 node[i]);
      }
    }
    first_at[k] = static_cast<int>(i);
    const YAML::Node value = step.get(kind);
    if (kind == "rotate") parse_rotate(src, value, kind_path, recipe);
    else if (kind == "smooth") parse_smooth(src, value, kind_path, recipe);
    else parse_quantize(src, value, kind_path, recipe);
  }
  if (first_at[2] < 0) {
    src.fail(path, "no quantize step: process needs a quantize step listing which linears get which scheme", node);
  }
}

}  // namespace moeslim::recipe::detail
