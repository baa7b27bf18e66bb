// The Qwen3 tokenizer: byte-level BPE loaded from a Hugging Face tokenizer.json, giving exactly the ids of
// Hugging Face `tokenizers` (Qwen2TokenizerFast) with add_special_tokens=False.
//
// encode() pipeline (order matters, docs/qwen3-moe-forward.md §7.3):
//   1. added tokens (tokenizer.json "added_tokens", special or not) are found in the RAW text, leftmost-
//      longest, non-overlapping, and emitted as their ids;
//   2. each text segment between them is NFC-normalised (when the file's normalizer is NFC);
//   3. the segment is split into pieces by the pre-tokenizer regex (matches and gaps, "Isolated");
//   4. each piece's UTF-8 bytes are mapped to GPT-2 byte symbols and
//   5. merged by BPE (lowest merge rank first, leftmost on ties); ids are appended.
// No BOS/EOS or other special token is ever added.
//
// Invalid UTF-8 input never fails: each ill-formed sequence is replaced by U+FFFD (Unicode's maximal-subpart
// rule) before step 1, and a warning is logged. decode() likewise returns valid UTF-8, with U+FFFD where the
// ids' bytes do not form valid UTF-8 (as Hugging Face's errors="replace").
//
// Unicode data comes from ICU (Unicode 15.0 in ICU 72); Hugging Face's current build knows Unicode 16. Only
// letters and digits assigned after 15.0 can split differently (docs/qwen3-moe-forward.md §7.4), a documented,
// rare divergence.
//
// A Tokenizer is immutable after loading except for its piece cache (guarded by a mutex) and the
// split_special_tokens default, so encode() may be called from several threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moeslim::text {

struct EncodeOptions {
  // true: special added tokens (special: true, e.g. <|endoftext|>) occurring in the text are tokenized as
  // ordinary text, like transformers' split_special_tokens=True. Non-special added tokens (<think>,
  // <tool_call>, ...) are still matched, as there.
  bool split_special_tokens = false;
};

class Tokenizer {
 public:
  // Loads a tokenizer.json. pad_id() is then the id of "<|endoftext|>"; eos_id() is unset.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // `path` is a model directory containing tokenizer.json, or a tokenizer.json file. A tokenizer_config.json
  // next to it, when present, supplies pad_token, eos_token and the split_special_tokens default.
  static Tokenizer from_model_dir_or_file(const std::filesystem::path& path);
  // From tokenizer.json text already in memory; `name` stands for the file in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json_text, const std::string& name);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `utf8`, with the default options (see set_split_special_tokens).
  std::vector<std::int32_t> encode(std::string_view utf8) const;
  std::vector<std::int32_t> encode(std::string_view utf8, const EncodeOptions& options) const;

  // The text of `ids`: BPE tokens are mapped back to their bytes, added tokens give their content.
  // Throws Error(kInvalidArgument) for an id that is neither in the vocabulary nor an added token.
  std::string decode(std::span<const std::int32_t> ids) const;

  // Vocabulary and added tokens alike (an added token wins when both spell the same string).
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // The token's string as stored (byte-level symbols for BPE tokens, e.g. "Ġthe"); nullopt for an unused id.
  std::optional<std::string> id_to_token(std::int32_t id) const;
  // Largest id of the vocabulary and the added tokens, plus one.
  std::int32_t vocab_size() const;

  // tokenizer_config.json's pad_token when given, else "<|endoftext|>". Throws Error(kNotFound) when that
  // token does not exist in this tokenizer.
  std::int32_t pad_id() const;
  // tokenizer_config.json's eos_token, when given.
  std::optional<std::int32_t> eos_id() const;

  // The default for encode(utf8): false unless tokenizer_config.json says split_special_tokens: true.
  bool split_special_tokens() const;
  void set_split_special_tokens(bool split);

  // Forgets the cached ids of previously seen pieces (results never depend on the cache; for benchmarks).
  void clear_cache() const;
  std::size_t cache_size() const;

  // The tokenizer.json this was loaded from (the name given to from_json).
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeslim::text
