// The tokenizers the text tests share. The real Qwen3 tokenizer.json takes a noticeable fraction of a second
// to parse, so each is loaded once per test binary (function-local statics) and shared by every test.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "text/tokenizer.h"

namespace moeslim::testing {

inline std::filesystem::path qwen3_tokenizer_dir() { return test_data_dir() / "tokenizers" / "qwen3"; }

inline const text::Tokenizer& qwen3_tokenizer() {
  static const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(qwen3_tokenizer_dir());
  return tokenizer;
}

inline const text::Tokenizer& tiny_tokenizer() {
  static const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(bundled_model_dir());
  return tokenizer;
}

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

// A reference file of the form [{"text": ..., "ids": [...]}, ...].
struct ReferenceCase {
  std::string text;
  std::vector<std::int32_t> ids;
};

inline std::vector<ReferenceCase> read_reference_ids(const std::filesystem::path& path) {
  std::vector<ReferenceCase> cases;
  for (const auto& entry : read_json_file(path)) {
    cases.push_back({entry.at("text").get<std::string>(), entry.at("ids").get<std::vector<std::int32_t>>()});
  }
  return cases;
}

}  // namespace moeslim::testing
