// GPT-2's byte-to-unicode table, used by byte-level BPE (the ByteLevel pre-tokenizer and decoder of
// tokenizer.json). Every byte gets a printable code point, so a vocabulary of strings can hold raw bytes:
// bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to themselves; the other 68 bytes (0x00-0x20, 0x7F-0xA0,
// 0xAD), in ascending order, map to U+0100, U+0101, ... (so the space 0x20 is U+0120 'Ġ').
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moeslim::text {

char32_t byte_to_unicode(std::uint8_t byte);

// The byte a code point stands for; nullopt for a code point outside the table.
std::optional<std::uint8_t> unicode_to_byte(char32_t code_point);

// The UTF-8 spelling of byte_to_unicode(byte): the vocabulary string of the single-byte symbol.
std::string byte_symbol(std::uint8_t byte);

}  // namespace moeslim::text
