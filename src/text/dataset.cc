#include "text/dataset.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer_files.h"

namespace moeslim::text {
namespace {

using json = nlohmann::json;

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::vector<std::string> parse_json_array(std::string_view content, const std::string& name) {
  json root;
  try {
    root = json::parse(content.begin(), content.end());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    throw Error(ErrorCode::kFormat, std::string("not valid JSON: ") + e.what(), name);
  }
  if (!root.is_array()) throw Error(ErrorCode::kFormat, "expected a JSON array of strings", name);
  std::vector<std::string> texts;
  texts.reserve(root.size());
  for (std::size_t i = 0; i < root.size(); ++i) {
    if (!root[i].is_string()) {
      throw Error(ErrorCode::kFormat, std::string("element is a JSON ") + root[i].type_name() + ", not a string", name,
                  "[" + std::to_string(i) + "]");
    }
    texts.push_back(root[i].get<std::string>());
  }
  return texts;
}

std::vector<std::string> parse_jsonl(std::string_view content, const std::string& name) {
  std::vector<std::string> texts;
  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos < content.size()) {
    std::size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    const std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (std::all_of(line.begin(), line.end(), is_blank)) continue;
    const std::string where = "line " + std::to_string(line_number);
    json object;
    try {
      object = json::parse(line.begin(), line.end());
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
      throw Error(ErrorCode::kFormat, std::string("not valid JSON: ") + e.what(), name, where);
    }
    if (!object.is_object()) {
      throw Error(ErrorCode::kFormat, "expected a JSON object with a \"text\" field", name, where);
    }
    // "text", or msModelSlim's calibration JSONL key "inputs_pretokenized" (lab_calib/mix_calib.jsonl).
    auto it = object.find("text");
    std::string key = "text";
    if (it == object.end() && object.contains("inputs_pretokenized")) {
      it = object.find("inputs_pretokenized");
      key = "inputs_pretokenized";
    }
    if (it == object.end()) throw Error(ErrorCode::kFormat, "missing", name, where + ".text");
    if (!it->is_string()) {
      throw Error(ErrorCode::kFormat, std::string("is a JSON ") + it->type_name() + ", not a string", name,
                  where + "." + key);
    }
    texts.push_back(it->get<std::string>());
  }
  return texts;
}

}  // namespace

std::vector<std::string> parse_text_dataset(std::string_view content, const std::string& name) {
  if (content.starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);  // a UTF-8 byte order mark
  const auto first = std::find_if_not(content.begin(), content.end(), is_blank);
  if (first == content.end()) throw Error(ErrorCode::kFormat, "file is empty", name);
  std::vector<std::string> texts = *first == '[' ? parse_json_array(content, name) : parse_jsonl(content, name);
  if (texts.empty()) throw Error(ErrorCode::kFormat, "dataset contains no texts", name);
  return texts;
}

std::vector<std::string> read_text_dataset(const std::filesystem::path& path) {
  return parse_text_dataset(read_file_text(path), path.string());
}

}  // namespace moeslim::text
