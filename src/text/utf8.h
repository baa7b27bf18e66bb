// UTF-8 validation and repair. Text that enters the tokenizer and text that leaves decode() is always valid
// UTF-8: every invalid sequence is replaced by U+FFFD, one replacement per "maximal subpart" (the Unicode
// Standard's recommended practice, §3.9, which Python's errors="replace" and Rust's from_utf8_lossy follow,
// so decode() agrees byte for byte with Hugging Face's).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace moeslim::text {

// The UTF-8 encoding of U+FFFD.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Length of the well-formed UTF-8 sequence at the start of `s` (1..4), or 0 when it is ill-formed; then
// *invalid_length receives the length of the maximal subpart to replace (at least 1). `s` must be non-empty.
std::size_t utf8_sequence_length(std::string_view s, std::size_t* invalid_length);

bool is_valid_utf8(std::string_view s);

// Appends `s` to `out` with each ill-formed sequence replaced by U+FFFD; returns how many were replaced.
std::size_t append_repaired_utf8(std::string_view s, std::string& out);

// Appends the UTF-8 encoding of a Unicode scalar value (surrogates and values above U+10FFFF become U+FFFD).
void append_utf8(char32_t code_point, std::string& out);

}  // namespace moeslim::text
