// Typed, path-aware reads of a parsed YAML file (recipes and the steps they list). Every failure is a
// kInvalidArgument Error whose file is the recipe and whose field is the key path ("process[1].smooth.alpha"),
// so a user can find the offending line without reading moeslim's source.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace moeslim::io::yaml {

// "data" + "batch_size" → "data.batch_size"; "" + "process" → "process".
std::string key_path(const std::string& parent, const std::string& key);
// "process" + 1 → "process[1]".
std::string index_path(const std::string& parent, std::size_t index);

// The file every error names, plus the error constructor itself.
class Source {
 public:
  explicit Source(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }
  // Throws kInvalidArgument; `node` (when defined) adds its line to the message.
  [[noreturn]] void fail(const std::string& path, const std::string& message, const YAML::Node& node = {}) const;

  std::string as_string(const YAML::Node& node, const std::string& path) const;
  std::int64_t as_int(const YAML::Node& node, const std::string& path, std::int64_t lo, std::int64_t hi) const;
  double as_number(const YAML::Node& node, const std::string& path, double lo, double hi) const;
  // A list of strings; `non_empty` makes [] an error.
  std::vector<std::string> as_string_list(const YAML::Node& node, const std::string& path, bool non_empty) const;
  // One of `allowed` (exact spelling); the error lists them.
  std::string as_choice(const YAML::Node& node, const std::string& path,
                        std::initializer_list<const char*> allowed) const;
  std::string as_choice(const YAML::Node& node, const std::string& path, const std::vector<std::string>& allowed) const;

 private:
  std::string file_;
};

// A YAML mapping whose keys have been checked against an allowed set: unknown keys, duplicate keys and non-string
// keys are errors at construction, so the parsers below only ask for keys they know.
class MapReader {
 public:
  MapReader(const Source& src, const YAML::Node& node, std::string where, std::initializer_list<const char*> allowed);
  MapReader(const Source& src, const YAML::Node& node, std::string where, std::vector<std::string> allowed);

  bool has(const std::string& key) const;
  std::size_t size() const { return entries_.size(); }
  const std::string& first_key() const { return entries_.front().first; }
  // The value of a present key (check has() first for optional keys); `required` keys are an error when absent.
  YAML::Node get(const std::string& key) const;
  YAML::Node require(const std::string& key) const;
  std::string path(const std::string& key) const { return key_path(path_, key); }
  const YAML::Node& node() const { return node_; }

 private:
  const Source& src_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
};

// "a mapping", "a list", "null", "the scalar 'x'": for "expected ..., got ..." messages.
std::string describe(const YAML::Node& node);

}  // namespace moeslim::io::yaml
