// Fuzzes the calibration / evaluation dataset reader (a JSON array of strings, or JSONL with "text"):
// parse_text_dataset must return prompts or throw moeslim::Error, never anything else.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "text/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<std::string> prompts = moeslim::text::parse_text_dataset(content, "fuzz.json");
    if (prompts.empty()) __builtin_trap();  // an empty dataset is an error, not an empty result
  } catch (const moeslim::Error&) {
  }
  return 0;
}
