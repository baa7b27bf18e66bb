// Fuzzes Tokenizer::encode with the real Qwen3 tokenizer on arbitrary bytes (invalid UTF-8 included, which
// encode replaces with U+FFFD). Checks: every id is in the vocabulary, decode of the ids gives valid UTF-8,
// and for ASCII input (which NFC leaves unchanged) decode gives the input back. The first input byte picks
// split_special_tokens.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/log.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

const moeslim::text::Tokenizer& tokenizer() {
  static const moeslim::text::Tokenizer t = [] {
    moeslim::set_log_level(moeslim::LogLevel::kQuiet);  // encode warns on every invalid UTF-8 input
    return moeslim::text::Tokenizer::from_model_dir_or_file(MOESLIM_SOURCE_DIR "/tests/data/tokenizers/qwen3");
  }();
  return t;
}

}  // namespace

// Loads the tokenizer before the first input, so its loading time is not charged to that input.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const moeslim::text::Tokenizer& tok = tokenizer();
  const moeslim::text::EncodeOptions options{.split_special_tokens = (data[0] & 1) != 0};
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<std::int32_t> ids = tok.encode(text, options);
  for (const std::int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
  const std::string back = tok.decode(ids);
  if (!moeslim::text::is_valid_utf8(back)) __builtin_trap();
  bool ascii = true;
  for (const char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii && back != text) __builtin_trap();
  return 0;
}
