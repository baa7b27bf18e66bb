// Reading and validating the Hugging Face tokenizer files: tokenizer.json (vocabulary, merges, added tokens,
// normalizer, pre-tokenizer) and tokenizer_config.json (pad/eos tokens, split_special_tokens).
//
// Only the pipeline Qwen2/Qwen3 (and GPT-2-style byte-level BPE) use is accepted; anything else is a
// kUnsupported error naming the JSON field, rather than a tokenizer that silently gives different ids.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/added_tokens.h"

namespace moeslim::text {

// Lets string-keyed maps be probed with a std::string_view, without building a std::string.
struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, std::int32_t, TransparentStringHash, std::equal_to<>>;

struct MergeRule {
  std::int32_t left;
  std::int32_t right;
  std::int32_t merged;  // rank = position in TokenizerDefinition::merges
};

struct TokenizerDefinition {
  TokenIdMap vocab;                                     // model.vocab
  std::vector<MergeRule> merges;                        // model.merges in file order
  std::array<std::int32_t, 256> byte_ids{};             // vocab id of each byte's single-byte symbol
  std::vector<AddedToken> added_tokens;                 // added_tokens in file order
  bool nfc = false;                                     // normalizer: NFC (true) or none
  std::string split_pattern;                            // the pre-tokenizer regex
  std::string split_pattern_field;                      // its JSON path, for errors
};

// `file` names the source in errors. Throws Error(kFormat) for malformed content and Error(kUnsupported)
// for a well-formed tokenizer.json whose pipeline moeslim does not implement.
TokenizerDefinition parse_tokenizer_json(std::string_view json_text, const std::string& file);

struct TokenizerConfig {
  std::optional<std::string> pad_token;  // null or absent: not set
  std::optional<std::string> eos_token;
  std::optional<bool> split_special_tokens;
};

TokenizerConfig parse_tokenizer_config(std::string_view json_text, const std::string& file);

// The whole file; Error(kNotFound) when it does not exist, Error(kIo) when it cannot be read.
std::string read_file_text(const std::filesystem::path& path);

// The regex GPT-2's ByteLevel pre-tokenizer uses when use_regex is true.
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace moeslim::text
