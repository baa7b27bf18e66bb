#include "io/yaml_fields.h"

#include <cmath>
#include <fmt/core.h>
#include <fmt/format.h>

#include "core/error.h"

namespace moeslim::io::yaml {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

}  // namespace

std::string key_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string index_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing (null)";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "'" + node.Scalar() + "'";
}

void Source::fail(const std::string& path, const std::string& message, const YAML::Node& node) const {
  std::string detail = message;
  // Only nodes read from the document know their position; a default-constructed one has a null mark.
  if (node.IsDefined() && !node.Mark().is_null()) {
    detail += fmt::format(" (line {})", node.Mark().line + 1);
  }
  throw Error(ErrorCode::kInvalidArgument, detail, file_, path);
}

std::string Source::as_string(const YAML::Node& node, const std::string& path) const {
  if (!node.IsScalar()) fail(path, "expected a string, got " + describe(node), node);
  return node.Scalar();
}

std::int64_t Source::as_int(const YAML::Node& node, const std::string& path, std::int64_t lo,
                            std::int64_t hi) const {
  const std::string range = fmt::format("an integer in {}..{}", lo, hi);
  if (!node.IsScalar()) fail(path, "expected " + range + ", got " + describe(node), node);
  std::int64_t v = 0;
  if (!YAML::convert<std::int64_t>::decode(node, v)) fail(path, "expected " + range + ", got " + describe(node), node);
  if (v < lo || v > hi) fail(path, fmt::format("{} is out of range: expected {}", v, range), node);
  return v;
}

double Source::as_number(const YAML::Node& node, const std::string& path, double lo, double hi) const {
  const std::string range = fmt::format("a number in [{}, {}]", lo, hi);
  if (!node.IsScalar()) fail(path, "expected " + range + ", got " + describe(node), node);
  double v = 0;
  if (!YAML::convert<double>::decode(node, v)) fail(path, "expected " + range + ", got " + describe(node), node);
  // !(in range) rather than (out of range) so that .nan is rejected too.
  if (!(v >= lo && v <= hi)) fail(path, fmt::format("{} is out of range: expected {}", node.Scalar(), range), node);
  return v;
}

std::vector<std::string> Source::as_string_list(const YAML::Node& node, const std::string& path,
                                                bool non_empty) const {
  if (!node.IsSequence()) fail(path, "expected a list of strings, got " + describe(node), node);
  if (non_empty && node.size() == 0) fail(path, "the list is empty: give at least one entry", node);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < node.size(); ++i) out.push_back(as_string(node[i], index_path(path, i)));
  return out;
}

std::string Source::as_choice(const YAML::Node& node, const std::string& path,
                              std::initializer_list<const char*> allowed) const {
  return as_choice(node, path, std::vector<std::string>(allowed.begin(), allowed.end()));
}

std::string Source::as_choice(const YAML::Node& node, const std::string& path,
                              const std::vector<std::string>& allowed) const {
  const std::string v = as_string(node, path);
  for (const std::string& a : allowed) {
    if (v == a) return v;
  }
  fail(path, "'" + v + "' is not allowed here: expected one of " + join(allowed), node);
}

MapReader::MapReader(const Source& src, const YAML::Node& node, std::string where,
                     std::initializer_list<const char*> allowed)
    : MapReader(src, node, std::move(where), std::vector<std::string>(allowed.begin(), allowed.end())) {}

MapReader::MapReader(const Source& src, const YAML::Node& node, std::string where, std::vector<std::string> allowed)
    : src_(src), node_(node), path_(std::move(where)) {
  if (!node.IsMap()) {
    src_.fail(path_, "expected a mapping with keys " + join(allowed) + ", got " + describe(node), node);
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) src_.fail(path_, "keys must be plain strings, got " + describe(key), key);
    const std::string name = key.Scalar();
    bool known = false;
    for (const std::string& a : allowed) known = known || name == a;
    if (!known) {
      src_.fail(path(name),
                fmt::format("unknown key '{}' in {}; allowed keys: {}", name,
                            path_.empty() ? std::string("the top level") : "'" + path_ + "'", join(allowed)),
                key);
    }
    // yaml-cpp keeps both entries of a repeated key and lookups return the first; a silent pick would hide a typo.
    for (const auto& [seen, value] : entries_) {
      if (seen == name) src_.fail(path(name), "duplicate key '" + name + "': each key may appear once", key);
    }
    entries_.emplace_back(name, it->second);
  }
}

bool MapReader::has(const std::string& key) const {
  for (const auto& [name, value] : entries_) {
    if (name == key) return true;
  }
  return false;
}

YAML::Node MapReader::get(const std::string& key) const {
  for (const auto& [name, value] : entries_) {
    if (name == key) return value;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Node MapReader::require(const std::string& key) const {
  if (!has(key)) {
    src_.fail(path(key),
              "missing required key '" + key + "' in " +
                  (path_.empty() ? std::string("the top level") : "'" + path_ + "'"),
              node_);
  }
  return get(key);
}

}  // namespace moeslim::io::yaml
