// Calibration and evaluation text files. Two layouts are accepted:
//   * a JSON array of strings (msModelSlim's qwen3-moe_*_prompt_50.json), or
//   * JSONL: one JSON object per line with a string "text" field (other fields ignored; blank lines skipped).
// The layout is chosen by the first non-blank character: '[' means a JSON array.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moeslim::text {

// Throws Error naming the file, and as the field the element ("[3]") or line ("line 7", "line 7.text"):
// kNotFound / kIo when the file cannot be read; kFormat for an empty file, invalid JSON, a non-string
// element, a JSONL line without a string "text" (or msModelSlim's "inputs_pretokenized"), or a dataset with
// no texts.
std::vector<std::string> read_text_dataset(const std::filesystem::path& path);

// The same for content already in memory; `name` stands for the file in errors.
std::vector<std::string> parse_text_dataset(std::string_view content, const std::string& name);

}  // namespace moeslim::text
