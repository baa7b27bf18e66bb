#include "text/tokenizer_files.h"

#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/byte_level.h"

namespace moeslim::text {
namespace {

using json = nlohmann::json;

// Field-path helpers: every error names the file and the JSON path of the offending value.
class JsonReader {
 public:
  explicit JsonReader(const std::string& file) : file_(file) {}

  [[noreturn]] void fail(ErrorCode code, const std::string& field, const std::string& detail) const {
    throw Error(code, detail, file_, field);
  }

  json parse(std::string_view text) const {
    try {
      return json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
      fail(ErrorCode::kFormat, "", std::string("not valid JSON: ") + e.what());
    }
  }

  // A member that must be present and non-null.
  const json& member(const json& object, const char* key, const std::string& path) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) fail(ErrorCode::kFormat, path, "missing");
    return *it;
  }

  // A member that may be absent or null (returns nullptr then).
  static const json* optional_member(const json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  bool bool_or(const json& object, const char* key, bool fallback, const std::string& path) const {
    const json* v = optional_member(object, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(ErrorCode::kFormat, path, "must be true or false");
    return v->get<bool>();
  }

  std::string string_member(const json& object, const char* key, const std::string& path) const {
    const json& v = member(object, key, path);
    if (!v.is_string()) fail(ErrorCode::kFormat, path, "must be a string");
    return v.get<std::string>();
  }

  const std::string& file() const { return file_; }

 private:
  const std::string& file_;
};

std::string in_quotes(std::string_view s) {
  std::string q;  // built by append: GCC 12 warns falsely (-Wrestrict) on "'" + std::string(s)
  q.reserve(s.size() + 2);
  q.append(1, '\'').append(s).append(1, '\'');
  return q;
}

// Id tables are indexed by id, so one huge id in a small file would cost gigabytes (found by fuzzing). The bound
// is 27 times Qwen3's 151,669 ids and 16 times the largest vocabularies in use (~262k).
constexpr std::int64_t kMaxTokenIds = std::int64_t{1} << 22;

std::int32_t token_id_value(const JsonReader& r, const json& v, const std::string& path) {
  if (!v.is_number_integer()) r.fail(ErrorCode::kFormat, path, "must be an integer token id");
  const std::int64_t id = v.get<std::int64_t>();
  if (id < 0 || id >= kMaxTokenIds) {
    r.fail(ErrorCode::kFormat, path,
           "token id " + std::to_string(id) + " is out of range (moeslim supports ids 0.." +
               std::to_string(kMaxTokenIds - 1) + ")");
  }
  return static_cast<std::int32_t>(id);
}

void read_vocab(const JsonReader& r, const json& model, TokenizerDefinition& def) {
  const json& vocab = r.member(model, "vocab", "model.vocab");
  if (!vocab.is_object()) r.fail(ErrorCode::kFormat, "model.vocab", "must be an object mapping token to id");
  def.vocab.reserve(vocab.size());
  std::unordered_map<std::int32_t, const std::string*> by_id;
  by_id.reserve(vocab.size());
  for (const auto& [token, value] : vocab.items()) {
    const std::int32_t id = token_id_value(r, value, "model.vocab[" + in_quotes(token) + "]");
    const auto [it, inserted] = def.vocab.emplace(token, id);
    const auto [id_it, new_id] = by_id.emplace(id, &it->first);
    if (!new_id) {
      r.fail(ErrorCode::kFormat, "model.vocab",
             "duplicate id " + std::to_string(id) + " (tokens " + in_quotes(*id_it->second) + " and " + in_quotes(token) + ")");
    }
  }
  for (int b = 0; b < 256; ++b) {
    const std::string symbol = byte_symbol(static_cast<std::uint8_t>(b));
    const auto it = def.vocab.find(symbol);
    if (it == def.vocab.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      r.fail(ErrorCode::kFormat, "model.vocab",
             "byte-level vocabulary lacks the symbol " + in_quotes(symbol) + " of byte " + hex);
    }
    def.byte_ids[b] = it->second;
  }
}

// A merge is either a pair ["a", "b"] (newer tokenizers) or a string "a b" (older files, e.g. Qwen2.5).
// Byte-level symbols never contain a space (the space byte is 'Ġ'), so the string form splits unambiguously.
void read_merges(const JsonReader& r, const json& model, TokenizerDefinition& def) {
  const json& merges = r.member(model, "merges", "model.merges");
  if (!merges.is_array()) r.fail(ErrorCode::kFormat, "model.merges", "must be an array");
  def.merges.reserve(merges.size());
  std::string left;
  std::string right;
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const std::size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() || s.find(' ', space + 1) != std::string::npos) {
        r.fail(ErrorCode::kFormat, path, "merge string " + in_quotes(s) + " is not two tokens separated by one space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      r.fail(ErrorCode::kFormat, path, "must be a pair of strings or a string \"left right\"");
    }
    auto lookup = [&](const std::string& token) {
      const auto it = def.vocab.find(token);
      if (it == def.vocab.end()) r.fail(ErrorCode::kFormat, path, "merge token " + in_quotes(token) + " is not in model.vocab");
      return it->second;
    };
    const std::int32_t left_id = lookup(left);
    const std::int32_t right_id = lookup(right);
    const std::int32_t merged_id = lookup(left + right);
    def.merges.push_back(MergeRule{left_id, right_id, merged_id});
  }
}

void check_model_options(const JsonReader& r, const json& model) {
  if (const json* v = JsonReader::optional_member(model, "dropout"); v != nullptr && !(v->is_number() && v->get<double>() == 0.0)) {
    r.fail(ErrorCode::kUnsupported, "model.dropout", "BPE dropout is not supported (must be null)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = JsonReader::optional_member(model, key);
    if (v != nullptr && !(v->is_string() && v->get_ref<const std::string&>().empty())) {
      r.fail(ErrorCode::kUnsupported, std::string("model.") + key, "must be empty or null");
    }
  }
  if (r.bool_or(model, "byte_fallback", false, "model.byte_fallback")) {
    r.fail(ErrorCode::kUnsupported, "model.byte_fallback", "byte fallback is not supported");
  }
  if (r.bool_or(model, "ignore_merges", false, "model.ignore_merges")) {
    r.fail(ErrorCode::kUnsupported, "model.ignore_merges", "ignore_merges is not supported");
  }
}

void read_normalizer(const JsonReader& r, const json& root, TokenizerDefinition& def) {
  const json* normalizer = JsonReader::optional_member(root, "normalizer");
  if (normalizer == nullptr) return;
  if (!normalizer->is_object()) r.fail(ErrorCode::kFormat, "normalizer", "must be an object or null");
  const std::string type = r.string_member(*normalizer, "type", "normalizer.type");
  if (type != "NFC") r.fail(ErrorCode::kUnsupported, "normalizer.type", "normalizer " + in_quotes(type) + " is not supported (only NFC or null)");
  def.nfc = true;
}

void check_byte_level(const JsonReader& r, const json& byte_level, const std::string& path, bool want_regex) {
  // tokenizers' defaults when a key is absent: add_prefix_space true, use_regex true.
  if (r.bool_or(byte_level, "add_prefix_space", true, path + ".add_prefix_space")) {
    r.fail(ErrorCode::kUnsupported, path + ".add_prefix_space", "add_prefix_space must be false");
  }
  if (r.bool_or(byte_level, "use_regex", true, path + ".use_regex") != want_regex) {
    r.fail(ErrorCode::kUnsupported, path + ".use_regex",
           want_regex ? "a lone ByteLevel pre-tokenizer must split with its regex (use_regex true)"
                      : "ByteLevel after a Split must not split again (use_regex false)");
  }
}

// Accepted: Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)] (Qwen2/Qwen3), or a single
// ByteLevel with use_regex true (GPT-2's regex).
void read_pre_tokenizer(const JsonReader& r, const json& root, TokenizerDefinition& def) {
  const json& pre = r.member(root, "pre_tokenizer", "pre_tokenizer");
  if (!pre.is_object()) r.fail(ErrorCode::kFormat, "pre_tokenizer", "must be an object");
  const std::string type = r.string_member(pre, "type", "pre_tokenizer.type");
  if (type == "ByteLevel") {
    check_byte_level(r, pre, "pre_tokenizer", true);
    def.split_pattern = std::string(kGpt2SplitPattern);
    def.split_pattern_field = "pre_tokenizer.use_regex";
    return;
  }
  if (type != "Sequence") {
    r.fail(ErrorCode::kUnsupported, "pre_tokenizer.type",
           "pre-tokenizer " + in_quotes(type) + " is not supported (only Sequence[Split, ByteLevel] or ByteLevel)");
  }
  const json& list = r.member(pre, "pretokenizers", "pre_tokenizer.pretokenizers");
  if (!list.is_array()) r.fail(ErrorCode::kFormat, "pre_tokenizer.pretokenizers", "must be an array");
  if (list.size() != 2) {
    r.fail(ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers",
           "expected exactly [Split, ByteLevel], got " + std::to_string(list.size()) + " pre-tokenizers");
  }
  for (std::size_t i = 0; i < 2; ++i) {
    if (!list[i].is_object()) r.fail(ErrorCode::kFormat, "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]", "must be an object");
  }
  const std::string split_path = "pre_tokenizer.pretokenizers[0]";
  const json& split = list[0];
  const std::string split_type = r.string_member(split, "type", split_path + ".type");
  if (split_type != "Split") {
    r.fail(ErrorCode::kUnsupported, split_path + ".type", "expected Split, got " + in_quotes(split_type));
  }
  const json& pattern = r.member(split, "pattern", split_path + ".pattern");
  const json* regex = pattern.is_object() ? JsonReader::optional_member(pattern, "Regex") : nullptr;
  if (regex == nullptr || !regex->is_string()) {
    r.fail(ErrorCode::kUnsupported, split_path + ".pattern", "only a {\"Regex\": ...} pattern is supported");
  }
  def.split_pattern = regex->get<std::string>();
  def.split_pattern_field = split_path + ".pattern.Regex";
  const std::string behavior = r.string_member(split, "behavior", split_path + ".behavior");
  if (behavior != "Isolated") {
    r.fail(ErrorCode::kUnsupported, split_path + ".behavior", "only behavior Isolated is supported, got " + in_quotes(behavior));
  }
  if (r.bool_or(split, "invert", false, split_path + ".invert")) {
    r.fail(ErrorCode::kUnsupported, split_path + ".invert", "invert must be false");
  }

  const std::string bl_path = "pre_tokenizer.pretokenizers[1]";
  const std::string bl_type = r.string_member(list[1], "type", bl_path + ".type");
  if (bl_type != "ByteLevel") r.fail(ErrorCode::kUnsupported, bl_path + ".type", "expected ByteLevel, got " + in_quotes(bl_type));
  check_byte_level(r, list[1], bl_path, false);
}

void read_added_tokens(const JsonReader& r, const json& root, TokenizerDefinition& def) {
  const json* added = JsonReader::optional_member(root, "added_tokens");
  if (added == nullptr) return;
  if (!added->is_array()) r.fail(ErrorCode::kFormat, "added_tokens", "must be an array");
  std::unordered_map<std::int32_t, std::string> vocab_by_id;
  vocab_by_id.reserve(def.vocab.size());
  for (const auto& [token, id] : def.vocab) vocab_by_id.emplace(id, token);
  std::unordered_map<std::int32_t, std::size_t> seen_ids;
  std::unordered_map<std::string, std::size_t> seen_contents;
  for (std::size_t i = 0; i < added->size(); ++i) {
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    const json& t = (*added)[i];
    if (!t.is_object()) r.fail(ErrorCode::kFormat, path, "must be an object");
    AddedToken token;
    token.id = token_id_value(r, r.member(t, "id", path + ".id"), path + ".id");
    token.content = r.string_member(t, "content", path + ".content");
    if (token.content.empty()) r.fail(ErrorCode::kFormat, path + ".content", "must not be empty");
    token.special = r.bool_or(t, "special", false, path + ".special");
    token.normalized = r.bool_or(t, "normalized", !token.special, path + ".normalized");  // tokenizers' default
    for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
      if (r.bool_or(t, flag, false, path + "." + flag)) {
        r.fail(ErrorCode::kUnsupported, path + "." + flag, std::string(flag) + " added tokens are not supported");
      }
    }
    if (const auto it = vocab_by_id.find(token.id); it != vocab_by_id.end() && it->second != token.content) {
      r.fail(ErrorCode::kFormat, path + ".id",
             "duplicate id " + std::to_string(token.id) + ": model.vocab has it as " + in_quotes(it->second));
    }
    if (const auto [it, inserted] = seen_ids.emplace(token.id, i); !inserted) {
      r.fail(ErrorCode::kFormat, path + ".id",
             "duplicate id " + std::to_string(token.id) + " (also added_tokens[" + std::to_string(it->second) + "])");
    }
    if (const auto [it, inserted] = seen_contents.emplace(token.content, i); !inserted) {
      r.fail(ErrorCode::kFormat, path + ".content",
             "duplicate token " + in_quotes(token.content) + " (also added_tokens[" + std::to_string(it->second) + "])");
    }
    def.added_tokens.push_back(std::move(token));
  }
}

// pad_token / eos_token: a string, an AddedToken object {"content": ...}, or null.
std::optional<std::string> special_token_entry(const JsonReader& r, const json& root, const char* key) {
  const json* v = JsonReader::optional_member(root, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return r.string_member(*v, "content", std::string(key) + ".content");
  r.fail(ErrorCode::kFormat, key, "must be a string, an object with \"content\", or null");
}

}  // namespace

TokenizerDefinition parse_tokenizer_json(std::string_view json_text, const std::string& file) {
  const JsonReader r(file);
  const json root = r.parse(json_text);
  if (!root.is_object()) r.fail(ErrorCode::kFormat, "", "top level must be a JSON object");
  TokenizerDefinition def;
  const json& model = r.member(root, "model", "model");
  if (!model.is_object()) r.fail(ErrorCode::kFormat, "model", "must be an object");
  const std::string type = r.string_member(model, "type", "model.type");
  if (type != "BPE") r.fail(ErrorCode::kUnsupported, "model.type", "model type " + in_quotes(type) + " is not supported (only BPE)");
  check_model_options(r, model);
  read_normalizer(r, root, def);
  read_pre_tokenizer(r, root, def);
  read_vocab(r, model, def);
  read_merges(r, model, def);
  read_added_tokens(r, root, def);
  return def;
}

TokenizerConfig parse_tokenizer_config(std::string_view json_text, const std::string& file) {
  const JsonReader r(file);
  const json root = r.parse(json_text);
  if (!root.is_object()) r.fail(ErrorCode::kFormat, "", "top level must be a JSON object");
  TokenizerConfig config;
  config.pad_token = special_token_entry(r, root, "pad_token");
  config.eos_token = special_token_entry(r, root, "eos_token");
  if (JsonReader::optional_member(root, "split_special_tokens") != nullptr) {
    config.split_special_tokens = r.bool_or(root, "split_special_tokens", false, "split_special_tokens");
  }
  return config;
}

std::string read_file_text(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(ErrorCode::kNotFound, "no such file", path.string());
  if (std::filesystem::is_directory(path, ec)) throw Error(ErrorCode::kIo, "is a directory, not a file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open for reading", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, "read failed", path.string());
  return std::move(buffer).str();
}

}  // namespace moeslim::text
