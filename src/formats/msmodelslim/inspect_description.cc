// inspect: the description file (docs/msmodelslim-format.md §3, §4, §5).
#include <fmt/core.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/msmodelslim/inspect_parts.h"
#include "formats/msmodelslim/names.h"
#include "io/json_file.h"

namespace moeslim::formats::msmodelslim::inspect_detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Records the top-level keys in file order. The values come from a second, map-based parse: an ordered_json
// parse looks keys up linearly and a 235B model's description has over 100,000 of them.
struct TopLevelKeys : nlohmann::json_sax<json> {
  std::vector<std::string> keys;
  int depth = 0;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return ++depth, true; }
  bool key(string_t& k) override {
    if (depth == 1) keys.push_back(k);
    return true;
  }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

const std::set<std::string> kTensorTypes = {"FLOAT", "W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC"};

// The fixed keys around the entries, per layout, with the value each must have (null = any object).
struct HeaderKeys {
  std::vector<std::pair<std::string, json>> head;
  std::vector<std::pair<std::string, json>> tail;
};

HeaderKeys header_keys(std::optional<Layout> layout) {
  if (!layout) return {};
  switch (*layout) {
    case Layout::kAscendV1:
      return {{{"version", kDescriptionVersion}, {"model_quant_type", json()}},
              {{"kv_quant_type", json()}, {"fa_quant_type", json()}, {"group_size", 0}}};
    case Layout::kMindIE: return {{{"model_quant_type", json()}}, {}};
    case Layout::kAscendV1V1:
      return {{},
              {{"version", kDescriptionVersion},
               {"model_quant_type", json()},
               {"metadata", json::object()},
               {"group_size", 0},
               {"optional", json::object()}}};
  }
  return {};
}

void check_header(const std::string& file, const std::vector<std::string>& keys, const json& doc, std::optional<Layout> layout,
                  Violations& violations) {
  const HeaderKeys header = header_keys(layout);
  auto check_at = [&](const std::pair<std::string, json>& expected, std::size_t position, const char* where) {
    const std::string subject = file + ": " + expected.first;
    if (!doc.contains(expected.first)) {
      violations.push_back({subject, "missing"});
      return;
    }
    if (position >= keys.size() || keys[position] != expected.first) {
      violations.push_back({subject, fmt::format("must be the {} key", where)});
    }
    const json& value = doc.at(expected.first);
    if (expected.first == "model_quant_type") {
      if (!value.is_string() || !kTensorTypes.count(value.get<std::string>()) || value == "FLOAT") {
        violations.push_back({subject, "must name a quantization type such as \"W8A8\", not " + value.dump()});
      } else if (layout == Layout::kAscendV1V1 && value == "W4A8_DYNAMIC") {
        violations.push_back({subject, "the W4A8 layout records \"W8A8_DYNAMIC\" as its model-level type"});
      }
    } else if (expected.second.is_object()) {
      if (!value.is_object()) violations.push_back({subject, "must be an object, not " + value.dump()});
    } else if (value != expected.second) {
      violations.push_back({subject, fmt::format("must be {}, not {}", expected.second.dump(), value.dump())});
    }
  };
  for (std::size_t i = 0; i < header.head.size(); ++i) {
    check_at(header.head[i], i, i == 0 ? "first" : fmt::format("#{}", i + 1).c_str());
  }
  for (std::size_t i = 0; i < header.tail.size(); ++i) {
    const std::size_t from_end = header.tail.size() - i;
    check_at(header.tail[i], keys.size() >= from_end ? keys.size() - from_end : keys.size(),
             fmt::format("{} from last", from_end).c_str());
  }
}

bool is_header_key(const std::string& key) {
  static const std::set<std::string> all = {"version",  "model_quant_type", "kv_quant_type", "fa_quant_type",
                                            "group_size", "metadata",       "optional"};
  return all.count(key) > 0;
}

}  // namespace

std::string layout_name(std::optional<Layout> layout) {
  return layout ? std::string(layout_rules(*layout).name) : std::string("unknown");
}

std::optional<Description> read_description(const fs::path& dir, Violations& violations) {
  std::error_code ec;
  const bool has_ascend = fs::is_regular_file(dir / kAscendV1DescriptionFile, ec);
  const bool has_mindie = fs::is_regular_file(dir / kMindIEDescriptionFile, ec);
  if (!has_ascend && !has_mindie) {
    violations.push_back({dir.string(), std::string("no description file (") + kAscendV1DescriptionFile + " or " +
                                            kMindIEDescriptionFile + ")"});
    return std::nullopt;
  }
  if (has_ascend && has_mindie) {
    violations.push_back({kMindIEDescriptionFile, std::string("both description files are present; loaders may read "
                                                              "either, so one layout must be removed (checking ") +
                                                      kAscendV1DescriptionFile + ")"});
  }
  Description d;
  d.file_name = has_ascend ? kAscendV1DescriptionFile : kMindIEDescriptionFile;
  std::string text;
  try {
    text = io::read_text_file(dir / d.file_name);
  } catch (const Error& e) {
    violations.push_back({d.file_name, e.what()});
    return std::nullopt;
  }
  json doc;
  TopLevelKeys order;
  try {
    doc = json::parse(text);
    json::sax_parse(text, &order);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    violations.push_back({d.file_name, "invalid JSON: " + io::describe_json_parse_error(text, e)});
    return std::nullopt;
  }
  if (!doc.is_object()) {
    violations.push_back({d.file_name, "not a JSON object"});
    return std::nullopt;
  }
  if (order.keys.size() != doc.size()) {
    std::set<std::string> seen;
    for (const auto& k : order.keys) {
      if (!seen.insert(k).second) violations.push_back({k, d.file_name + " has this key more than once"});
    }
  }

  if (!has_ascend) {
    d.layout = Layout::kMindIE;
  } else if (!order.keys.empty() && order.keys.front() == "version") {
    d.layout = Layout::kAscendV1;
  } else if (doc.contains("version")) {
    d.layout = Layout::kAscendV1V1;
  } else {
    violations.push_back({d.file_name + ": version", "missing"});
  }
  check_header(d.file_name, order.keys, doc, d.layout, violations);
  if (doc.contains("model_quant_type") && doc["model_quant_type"].is_string()) {
    d.model_quant_type = doc["model_quant_type"].get<std::string>();
  }

  for (const std::string& key : order.keys) {
    if (is_header_key(key)) {
      const HeaderKeys header = header_keys(d.layout);
      bool expected = false;
      for (const auto* part : {&header.head, &header.tail}) {
        for (const auto& [k, v] : *part) expected = expected || k == key;
      }
      if (!expected && d.layout) {
        violations.push_back({d.file_name + ": " + key, std::string("not a key of the ") + layout_name(d.layout) +
                                                            " layout's description"});
      }
      continue;
    }
    if (d.type_of.count(key)) continue;  // a duplicate, reported above
    const json& value = doc.at(key);
    if (!value.is_string() || !kTensorTypes.count(value.get<std::string>())) {
      violations.push_back({key, d.file_name + " gives it the unknown type " + value.dump() +
                                     " (expected FLOAT, W8A8, W8A8_DYNAMIC or W4A8_DYNAMIC)"});
      continue;
    }
    d.entries.emplace_back(key, value.get<std::string>());
    d.type_of.emplace(key, value.get<std::string>());
  }
  return d;
}

}  // namespace moeslim::formats::msmodelslim::inspect_detail
