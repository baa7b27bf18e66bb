#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace moeslim::text {
namespace {

constexpr bool maps_to_itself(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> make_byte_to_unicode() {
  std::array<char32_t, 256> table{};
  char32_t next_shifted = 0x100;
  for (unsigned b = 0; b < 256; ++b) table[b] = maps_to_itself(b) ? b : next_shifted++;
  return table;
}

constexpr std::array<char32_t, 256> kByteToUnicode = make_byte_to_unicode();

// The table's largest code point is U+0143 (0x100 + 68 - 1); the inverse is indexed by code point.
constexpr char32_t kMaxMapped = 0x100 + 68 - 1;
static_assert(kByteToUnicode[0xAD] == kMaxMapped);
static_assert(kByteToUnicode[0x20] == 0x120);

constexpr std::array<std::int16_t, kMaxMapped + 1> make_unicode_to_byte() {
  std::array<std::int16_t, kMaxMapped + 1> table{};
  for (auto& v : table) v = -1;
  for (unsigned b = 0; b < 256; ++b) table[kByteToUnicode[b]] = static_cast<std::int16_t>(b);
  return table;
}

constexpr std::array<std::int16_t, kMaxMapped + 1> kUnicodeToByte = make_unicode_to_byte();

}  // namespace

char32_t byte_to_unicode(std::uint8_t byte) { return kByteToUnicode[byte]; }

std::optional<std::uint8_t> unicode_to_byte(char32_t code_point) {
  if (code_point > kMaxMapped || kUnicodeToByte[code_point] < 0) return std::nullopt;
  return static_cast<std::uint8_t>(kUnicodeToByte[code_point]);
}

std::string byte_symbol(std::uint8_t byte) {
  std::string s;
  append_utf8(byte_to_unicode(byte), s);
  return s;
}

}  // namespace moeslim::text
