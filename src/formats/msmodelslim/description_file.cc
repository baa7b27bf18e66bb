#include "formats/msmodelslim/description_file.h"

#include "io/output_file.h"

namespace moeslim::formats::msmodelslim {
namespace {

std::string json_text(const nlohmann::ordered_json& value) {
  // Nested values (W4A8's "metadata") are indented one level deeper than the top-level members.
  std::string text = value.dump(4, ' ', /*ensure_ascii=*/true);
  std::string indented;
  for (char c : text) {
    indented += c;
    if (c == '\n') indented += "    ";
  }
  return indented;
}

void append_member(std::string& text, bool& first, const std::string& key, const std::string& value_text) {
  text += first ? "\n    " : ",\n    ";
  first = false;
  text += nlohmann::json(key).dump(-1, ' ', /*ensure_ascii=*/true);
  text += ": ";
  text += value_text;
}

}  // namespace

std::string render_description(const std::vector<DescriptionKey>& head, const std::vector<DescribedTensor>& tensors,
                               const std::vector<DescriptionKey>& tail) {
  std::string text = "{";
  bool first = true;
  for (const auto& [key, value] : head) append_member(text, first, key, json_text(value));
  for (const auto& t : tensors) append_member(text, first, t.name, nlohmann::json(t.type).dump());
  for (const auto& [key, value] : tail) append_member(text, first, key, json_text(value));
  return text + (first ? "}" : "\n}");
}

void write_description(const std::filesystem::path& path, const std::vector<DescriptionKey>& head,
                       const std::vector<DescribedTensor>& tensors, const std::vector<DescriptionKey>& tail) {
  io::write_text_file(path, render_description(head, tensors, tail));
}

}  // namespace moeslim::formats::msmodelslim
