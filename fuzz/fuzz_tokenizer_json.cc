// Fuzzes tokenizer.json parsing (Tokenizer::from_json). A file that loads must then encode and decode a
// fixed text with ids inside its vocabulary.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/log.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  moeslim::set_log_level(moeslim::LogLevel::kQuiet);
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const moeslim::text::Tokenizer tok = moeslim::text::Tokenizer::from_json(json, "fuzz/tokenizer.json");
    const std::vector<std::int32_t> ids = tok.encode("Hello, world! 123 <|endoftext|> na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87\n");
    for (const std::int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    }
    tok.decode(ids);
  } catch (const moeslim::Error&) {
  }
  return 0;
}
