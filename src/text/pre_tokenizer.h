// The two Unicode steps between added-token matching and BPE, both done with ICU (Unicode 15.0 in ICU 72):
// the NFC normalizer and the Split pre-tokenizer's regex. The regex runs on ICU's UTF-16 strings, but pieces
// are handed back as views into the caller's UTF-8, so nothing is copied per piece.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moeslim::text {

// NFC of valid UTF-8. Returns `utf8` itself when it is already normalised (the common case, checked
// quickly), otherwise the normalised text written into `storage`.
std::string_view normalize_nfc(std::string_view utf8, std::string& storage);

// The regex of tokenizer.json's Split pre-tokenizer with behaviour "Isolated": every match is a piece and
// every stretch between matches is a piece too, so the pieces cover the text. ICU's syntax accepts the
// Oniguruma patterns of Qwen and GPT-2, and its `\s` is Unicode White_Space exactly (U+FEFF and U+180E are
// not whitespace), and `(?i)` uses Unicode case folding ('ſ' matches 's'), as Hugging Face's Oniguruma does.
class RegexSplitter {
 public:
  // Throws Error(kFormat) with ICU's reason when the pattern does not compile (the caller adds file and field).
  explicit RegexSplitter(std::string_view pattern_utf8);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;

  // Appends the non-empty pieces of `utf8` (valid UTF-8), as views into it, to `pieces`. Thread-safe: each
  // call uses its own ICU matcher.
  void split(std::string_view utf8, std::vector<std::string_view>& pieces) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeslim::text
