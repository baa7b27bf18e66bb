#include "report/report_data.h"

#include <fmt/core.h>

#include <cmath>
#include <limits>
#include <string_view>

#include "core/error.h"
#include "report/markup.h"

namespace moeslim::report {
namespace {

using Json = nlohmann::ordered_json;

// Far beyond any Qwen3-MoE (94 layers, 160 experts) and any search grid (42 points), small enough that a
// hand-edited report cannot make a page of gigabytes.
constexpr std::size_t kMaxLayers = 1024;
constexpr std::size_t kMaxExperts = 1024;
constexpr std::size_t kMaxSearchPoints = 10000;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::kFormat, what, {}, path);
}

std::string member_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string element_path(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

[[noreturn]] void fail_type(const Json& j, const std::string& path, const char* expected) {
  fail(path, fmt::format("is {} {}, expected {}", j.is_array() || j.is_object() ? "an" : "a", j.type_name(), expected));
}

// The member `key` of the object `obj`, or nullptr when absent.
const Json* find(const Json& obj, std::string_view key) {
  const auto it = obj.find(std::string(key));
  return it == obj.end() ? nullptr : &*it;
}

const Json& require(const Json& obj, std::string_view key, const std::string& obj_path) {
  const Json* j = find(obj, key);
  if (j == nullptr) fail(member_path(obj_path, key), "missing");
  return *j;
}

void expect_object(const Json& j, const std::string& path) {
  if (!j.is_object()) fail_type(j, path, "an object");
}

void expect_array(const Json& j, const std::string& path, std::size_t max_size) {
  if (!j.is_array()) fail_type(j, path, "an array");
  if (j.size() > max_size)
    fail(path, fmt::format("has {} elements, more than the {} a report can have", j.size(), max_size));
}

double number(const Json& j, const std::string& path) {
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();  // how nlohmann::json writes NaN and inf
  if (!j.is_number()) fail_type(j, path, "a number");
  return j.get<double>();
}

double non_negative(const Json& j, const std::string& path) {
  const double v = number(j, path);
  if (v < 0) fail(path, fmt::format("is {}, expected a number ≥ 0", format_number(v)));
  return v;
}

double fraction(const Json& j, const std::string& path) {
  const double v = number(j, path);
  if (v < 0 || v > 1) fail(path, fmt::format("is {}, expected a fraction between 0 and 1", format_number(v)));
  return v;
}

std::int64_t count(const Json& j, const std::string& path) {
  if (j.is_number_unsigned() && j.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return j.get<std::int64_t>();
  }
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return j.get<std::int64_t>();
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (v >= 0 && v <= 9e15 && v == std::floor(v)) return static_cast<std::int64_t>(v);
  }
  if (j.is_number()) fail(path, fmt::format("is {}, expected a whole number ≥ 0", j.dump()));
  fail_type(j, path, "a whole number ≥ 0");
}

std::string string_value(const Json& j, const std::string& path) {
  if (!j.is_string()) fail_type(j, path, "a string");
  return j.get<std::string>();
}

bool boolean_value(const Json& j, const std::string& path) {
  if (!j.is_boolean()) fail_type(j, path, "true or false");
  return j.get<bool>();
}

// Optional members: absent → nullopt; present → read (and checked) by `read`.
template <typename Read>
auto optional_member(const Json& obj, std::string_view key, const std::string& obj_path, Read read)
    -> std::optional<decltype(read(obj, std::string()))> {
  const Json* j = find(obj, key);
  if (j == nullptr) return std::nullopt;
  return read(*j, member_path(obj_path, key));
}

RouterAgreement read_router_agreement(const Json& j, const std::string& path) {
  expect_object(j, path);
  RouterAgreement r;
  r.exact = fraction(require(j, "exact", path), member_path(path, "exact"));
  r.mean_overlap = optional_member(j, "mean_overlap", path, fraction);
  r.tokens = optional_member(j, "tokens", path, count);
  return r;
}

RouterAgreement exact_only(double exact) {
  RouterAgreement r;
  r.exact = exact;
  return r;
}

std::vector<SearchPoint> read_search(const Json& j, const std::string& path) {
  expect_array(j, path, kMaxSearchPoints);
  std::vector<SearchPoint> points;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string p = element_path(path, i);
    expect_object(j[i], p);
    points.push_back({number(require(j[i], "alpha", p), member_path(p, "alpha")),
                      number(require(j[i], "beta", p), member_path(p, "beta")),
                      number(require(j[i], "error", p), member_path(p, "error"))});
  }
  return points;
}

std::vector<SubgraphChoice> read_smoothing(const Json& j, const std::string& path) {
  expect_object(j, path);
  std::vector<SubgraphChoice> choices;
  for (const auto& [subgraph, c] : j.items()) {
    const std::string p = member_path(path, subgraph);
    expect_object(c, p);
    SubgraphChoice s;
    s.subgraph = subgraph;
    s.alpha = number(require(c, "alpha", p), member_path(p, "alpha"));
    s.beta = number(require(c, "beta", p), member_path(p, "beta"));
    s.searched = optional_member(c, "searched", p, boolean_value);
    s.error = optional_member(c, "error", p, number);
    s.experts_smoothed = optional_member(c, "experts_smoothed", p, count);
    if (const Json* search = find(c, "search")) s.search = read_search(*search, member_path(p, "search"));
    choices.push_back(std::move(s));
  }
  return choices;
}

std::vector<WeightFallback> read_fallbacks(const Json& j, const std::string& path) {
  expect_array(j, path, std::numeric_limits<std::size_t>::max());
  std::vector<WeightFallback> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string p = element_path(path, i);
    expect_object(j[i], p);
    out.push_back({string_value(require(j[i], "module", p), member_path(p, "module")),
                   string_value(require(j[i], "reason", p), member_path(p, "reason"))});
  }
  return out;
}

LayerData read_layer(const Json& j, const std::string& path) {
  expect_object(j, path);
  LayerData l;
  l.layer = count(require(j, "layer", path), member_path(path, "layer"));
  l.relative_error = non_negative(require(j, "relative_error", path), member_path(path, "relative_error"));
  if (const Json* tokens = find(j, "expert_tokens")) {
    const std::string p = member_path(path, "expert_tokens");
    expect_array(*tokens, p, kMaxExperts);
    for (std::size_t e = 0; e < tokens->size(); ++e) l.expert_tokens.push_back(count((*tokens)[e], element_path(p, e)));
  }
  if (const Json* without = find(j, "experts_without_tokens")) {
    // Not shown separately (the heat map shows every count), but checked: an index that names no expert
    // means the file was edited inconsistently.
    const std::string p = member_path(path, "experts_without_tokens");
    expect_array(*without, p, kMaxExperts);
    for (std::size_t i = 0; i < without->size(); ++i) {
      const std::int64_t e = count((*without)[i], element_path(p, i));
      if (e >= static_cast<std::int64_t>(l.expert_tokens.size())) {
        fail(element_path(p, i),
             fmt::format("expert {} is not in expert_tokens ({} experts)", e, l.expert_tokens.size()));
      }
    }
  }
  if (const Json* s = find(j, "smoothing")) l.smoothing = read_smoothing(*s, member_path(path, "smoothing"));
  if (const Json* f = find(j, "weight_fallbacks"))
    l.weight_fallbacks = read_fallbacks(*f, member_path(path, "weight_fallbacks"));
  l.router_agreement = optional_member(j, "router_agreement", path, read_router_agreement);
  return l;
}

EvaluationData read_evaluation(const Json& j, const std::string& path) {
  expect_object(j, path);
  EvaluationData e;
  const auto req = [&](std::string_view key) -> std::pair<const Json&, std::string> {
    return {require(j, key, path), member_path(path, key)};
  };
  {
    const auto [v, p] = req("float_perplexity");
    e.float_perplexity = non_negative(v, p);
  }
  {
    const auto [v, p] = req("quantized_perplexity");
    e.quantized_perplexity = non_negative(v, p);
  }
  {
    const auto [v, p] = req("perplexity_change");
    e.perplexity_change = number(v, p);
  }
  e.data = optional_member(j, "data", path, string_value).value_or("");
  e.tokens = optional_member(j, "tokens", path, count);
  e.mean_kl = optional_member(j, "mean_kl", path, number);
  e.top1_agreement = optional_member(j, "top1_agreement", path, fraction);
  if (const Json* r = find(j, "router_agreement")) {
    const std::string p = member_path(path, "router_agreement");
    e.router_agreement = read_router_agreement(*r, p);
    if (const Json* per_layer = find(*r, "per_layer")) {
      // Each element is a layer's agreement: an object like per_layer[i].router_agreement, or its exact
      // fraction alone.
      const std::string pp = member_path(p, "per_layer");
      expect_array(*per_layer, pp, kMaxLayers);
      for (std::size_t i = 0; i < per_layer->size(); ++i) {
        const Json& v = (*per_layer)[i];
        e.router_agreement_per_layer.push_back(v.is_object() ? read_router_agreement(v, element_path(pp, i))
                                                             : exact_only(fraction(v, element_path(pp, i))));
      }
    }
  }
  return e;
}

// A scalar of the run's settings as text.
std::string setting_text(const Json& j, const std::string& path) {
  if (j.is_string()) return j.get<std::string>().empty() ? "(none)" : j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  if (j.is_number_integer()) return j.dump();
  if (j.is_number() || j.is_null()) return format_number(number(j, path));
  fail_type(j, path, "a string, number or boolean");
}

std::vector<RecipeStep> read_steps(const Json& j, const std::string& path) {
  expect_array(j, path, std::numeric_limits<std::size_t>::max());
  std::vector<RecipeStep> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string p = element_path(path, i);
    if (j[i].is_string()) {  // a name alone
      out.push_back({j[i].get<std::string>(), ""});
      continue;
    }
    expect_object(j[i], p);
    RecipeStep s{string_value(require(j[i], "step", p), member_path(p, "step")), ""};
    if (const Json* settings = find(j[i], "settings")) {
      // Replacement of invalid UTF-8 here too: the page escapes it again, but dump() itself would throw.
      s.settings_json = settings->dump(2, ' ', false, Json::error_handler_t::replace);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

ReportData read_report_data(const nlohmann::ordered_json& report) {
  expect_object(report, "(the report)");
  ReportData d;
  const Json& per_layer = require(report, "per_layer", "");
  expect_array(per_layer, "per_layer", kMaxLayers);
  for (std::size_t i = 0; i < per_layer.size(); ++i)
    d.layers.push_back(read_layer(per_layer[i], element_path("per_layer", i)));

  d.evaluation = optional_member(report, "evaluation", "", read_evaluation);
  if (const auto min_tokens = optional_member(report, "starved_expert_min_tokens", "", count)) {
    d.starved_expert_min_tokens = *min_tokens;
    d.starved_threshold_in_report = true;
  }
  if (const Json* timing = find(report, "timing_seconds")) {
    expect_object(*timing, "timing_seconds");
    for (const auto& [phase, seconds] : timing->items()) {
      const double s = non_negative(seconds, member_path("timing_seconds", phase));
      if (phase == "total") {
        d.total_seconds = s;
      } else {
        d.timing_seconds.emplace_back(phase, s);
      }
    }
  }
  d.peak_rss_bytes = optional_member(report, "peak_rss_bytes", "", non_negative);
  d.expected_peak_memory_bytes = optional_member(report, "expected_peak_memory_bytes", "", non_negative);
  d.expected_output_bytes = optional_member(report, "expected_output_bytes", "", non_negative);

  static const char* const kSettings[] = {"recipe",
                                          "recipe_file",
                                          "apiversion",
                                          "format",
                                          "quant_type",
                                          "model_type",
                                          "model_path",
                                          "rotation",
                                          "smoothing",
                                          "anti_dataset",
                                          "calib_dataset",
                                          "float_precision",
                                          "batch_size",
                                          "stats_include_padding",
                                          "layers",
                                          "anti_tokens",
                                          "calibration_tokens",
                                          "threads",
                                          "experts_per_group"};
  for (const char* key : kSettings) {
    if (const Json* v = find(report, key)) d.run_settings.emplace_back(key, setting_text(*v, key));
  }
  if (const Json* s = find(report, "steps")) {
    d.steps = read_steps(*s, "steps");
    d.steps_in_report = true;
  }
  return d;
}

}  // namespace moeslim::report
