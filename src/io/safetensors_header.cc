#include "io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/json_file.h"

namespace moeslim::io {
namespace {

using nlohmann::json;

// Safetensors dtypes that exist but moeslim does not read: rejected as kUnsupported rather than kFormat.
constexpr std::string_view kKnownUnsupportedDtypes[] = {
    "BOOL", "U16", "I16", "U32", "U64", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

// Byte offset of the first ill-formed UTF-8 sequence, or npos. Rejects overlong forms, surrogates and
// code points above U+10FFFF, as the reference (Rust's str::from_utf8) does.
std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Parses JSON, rejecting a key that repeats within one object (nlohmann would silently keep the last one,
// so a tensor listed twice would go unnoticed).
json parse_with_unique_keys(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  std::string top_level_key;  // the tensor entry being parsed, to name it in errors about nested keys
  auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      const bool top_level = open_objects.size() == 1;
      if (top_level) top_level_key = key;
      if (!open_objects.back().insert(key).second) {
        if (top_level) throw Error(ErrorCode::kFormat, "duplicate key in the header JSON (listed twice)", file, key);
        throw Error(ErrorCode::kFormat, "duplicate key '" + key + "' inside the header entry", file, top_level_key);
      }
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    throw Error(ErrorCode::kFormat, "header is not valid JSON at " + describe_json_parse_error(text, e), file);
  }
}

DType parse_dtype(const json& entry, const std::string& file, const std::string& name) {
  const auto it = entry.find("dtype");
  if (it == entry.end()) throw Error(ErrorCode::kFormat, "header entry has no 'dtype'", file, name);
  if (!it->is_string()) throw Error(ErrorCode::kFormat, "'dtype' is not a string: " + it->dump(), file, name);
  const auto& text = it->get_ref<const std::string&>();
  if (const auto dtype = dtype_from_name(text)) return *dtype;
  if (std::find(std::begin(kKnownUnsupportedDtypes), std::end(kKnownUnsupportedDtypes), text) !=
      std::end(kKnownUnsupportedDtypes)) {
    throw Error(ErrorCode::kUnsupported,
                "dtype " + text + " is not supported (moeslim reads BF16, F16, F32, I8, U8, I32, I64)", file, name);
  }
  throw Error(ErrorCode::kFormat, "unknown dtype '" + text + "'", file, name);
}

// A JSON array of non-negative integers, e.g. "shape" or "data_offsets".
std::vector<std::uint64_t> parse_unsigned_array(const json& entry, const char* key, const std::string& file,
                                                const std::string& name) {
  const auto it = entry.find(key);
  if (it == entry.end()) throw Error(ErrorCode::kFormat, std::string("header entry has no '") + key + "'", file, name);
  if (!it->is_array()) {
    throw Error(ErrorCode::kFormat, std::string("'") + key + "' is not an array: " + it->dump(), file, name);
  }
  std::vector<std::uint64_t> values;
  for (const json& v : *it) {
    if (!v.is_number_unsigned()) {
      throw Error(ErrorCode::kFormat, std::string("'") + key + "' must hold non-negative integers, found " + v.dump(),
                  file, name);
    }
    values.push_back(v.get<std::uint64_t>());
  }
  return values;
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::uint64_t data_size, const std::string& file) {
  if (!entry.is_object()) {
    throw Error(ErrorCode::kFormat, "header entry is not an object: " + entry.dump(), file, name);
  }
  TensorInfo t;
  t.name = name;
  t.dtype = parse_dtype(entry, file, name);

  std::uint64_t bytes = dtype_size(t.dtype);
  for (std::uint64_t d : parse_unsigned_array(entry, "shape", file, name)) {
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
        __builtin_mul_overflow(bytes, d, &bytes)) {
      throw Error(ErrorCode::kFormat, "byte size of shape x dtype size overflows 64 bits", file, name);
    }
    t.shape.push_back(static_cast<std::int64_t>(d));
  }

  const auto offsets = parse_unsigned_array(entry, "data_offsets", file, name);
  if (offsets.size() != 2) {
    throw Error(ErrorCode::kFormat,
                "'data_offsets' must be [begin, end], found " + std::to_string(offsets.size()) + " numbers", file,
                name);
  }
  t.begin = offsets[0];
  t.end = offsets[1];
  const std::string range = "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
  if (t.begin > t.end) throw Error(ErrorCode::kFormat, "data_offsets " + range + " have begin > end", file, name);
  if (t.end - t.begin != bytes) {
    throw Error(ErrorCode::kFormat,
                "data_offsets " + range + " span " + std::to_string(t.end - t.begin) + " bytes but shape " +
                    shape_to_string(t.shape) + " x " + std::string(dtype_name(t.dtype)) + " needs " +
                    std::to_string(bytes),
                file, name);
  }
  if (t.end > data_size) {
    throw Error(
        ErrorCode::kFormat,
        "data_offsets " + range + " run past the end of the data area (" + std::to_string(data_size) + " bytes)", file,
        name);
  }
  return t;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file) {
  const std::string key = "__metadata__";
  if (!value.is_object()) throw Error(ErrorCode::kFormat, "'__metadata__' is not an object", file, key);
  std::map<std::string, std::string> metadata;
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) {
      throw Error(ErrorCode::kFormat, "'__metadata__' value of '" + k + "' is not a string: " + v.dump(), file, key);
    }
    metadata.emplace(k, v.get<std::string>());
  }
  return metadata;
}

// The ranges, sorted, must tile [0, data_size) exactly: the reference writer leaves no holes, and a file
// with holes or trailing bytes is truncated or corrupt more often than it is deliberate.
void check_coverage(const std::vector<TensorInfo>& sorted, std::uint64_t data_size, const std::string& file) {
  std::uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : sorted) {
    if (t.begin < covered) {
      throw Error(ErrorCode::kFormat,
                  "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] overlap those of '" +
                      previous->name + "' [" + std::to_string(previous->begin) + ", " + std::to_string(previous->end) +
                      "]",
                  file, t.name);
    }
    if (t.begin > covered) {
      throw Error(ErrorCode::kFormat,
                  "gap in the data area: bytes [" + std::to_string(covered) + ", " + std::to_string(t.begin) +
                      ") before this tensor belong to no tensor",
                  file, t.name);
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    throw Error(ErrorCode::kFormat,
                "data area has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                    std::to_string(covered) + ": trailing bytes after the last tensor",
                file, previous ? previous->name : std::string());
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view header, std::uint64_t data_size, const std::string& file) {
  if (const auto bad = find_invalid_utf8(header); bad != std::string_view::npos) {
    throw Error(ErrorCode::kFormat, "header is not valid UTF-8 (byte " + std::to_string(bad) + " of the header)", file);
  }
  const json root = parse_with_unique_keys(header, file);
  if (!root.is_object()) {
    throw Error(ErrorCode::kFormat, std::string("header JSON is not an object but ") + root.type_name(), file);
  }
  SafetensorsHeader out;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      out.metadata = parse_metadata(value, file);
    } else {
      out.tensors.push_back(parse_entry(name, value, data_size, file));
    }
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_coverage(out.tensors, data_size, file);
  return out;
}

std::string build_safetensors_header(const std::vector<TensorInfo>& tensors,
                                     const std::map<std::string, std::string>& metadata) {
  // Assembled entry by entry: an ordered_json object would search its keys linearly on every insertion.
  std::string text = "{";
  if (!metadata.empty()) text += "\"__metadata__\":" + json(metadata).dump();
  for (const TensorInfo& t : tensors) {
    if (text.size() > 1) text += ',';
    text += json(t.name).dump();
    text += ":{\"dtype\":\"";
    text += dtype_name(t.dtype);
    text += "\",\"shape\":" + json(t.shape).dump();
    text += ",\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::string encode_header_length(std::uint64_t n) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes;
}

}  // namespace moeslim::io
