// Loading JSON files with errors that name the file: the one helper the project uses to read JSON.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace moeslim::io {

// The whole file as bytes. kIo (with the system's reason) if it cannot be opened or read.
std::string read_text_file(const std::filesystem::path& path);

// Parses a JSON file. kIo if it cannot be opened or read; kFormat, with the line and
// column of the problem, if it is not valid JSON. Duplicate keys keep the last value, as Python's json does.
nlohmann::json read_json_file(const std::filesystem::path& path);
// The same, keeping the file's key order (e.g. a shard index's weight_map).
nlohmann::ordered_json read_ordered_json_file(const std::filesystem::path& path);

// "line L, column C: <reason>" for a parse error in `text` (lines and columns 1-based); for the other errors
// nlohmann's parser throws (out_of_range.406: a number too large for a double, e.g. 1e400), the reason alone.
std::string describe_json_parse_error(std::string_view text, const nlohmann::json::exception& e);

}  // namespace moeslim::io
