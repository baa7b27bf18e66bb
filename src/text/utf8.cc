#include "text/utf8.h"

#include <cstdint>

namespace moeslim::text {
namespace {

// Unicode Table 3-7: the allowed range of the second byte depends on the lead byte (this excludes overlong
// forms, surrogates and values above U+10FFFF); later continuation bytes are always 80..BF.
struct LeadInfo {
  std::uint8_t length;  // 0: not a lead byte
  std::uint8_t second_lo;
  std::uint8_t second_hi;
};

LeadInfo lead_info(std::uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};  // continuation byte, or C0/C1 (always overlong)
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view s, std::size_t* invalid_length) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  const LeadInfo info = lead_info(p[0]);
  if (info.length == 1) return 1;
  if (info.length == 0) {
    *invalid_length = 1;
    return 0;
  }
  std::size_t i = 1;
  for (; i < info.length; ++i) {
    if (i >= s.size()) break;
    const std::uint8_t lo = i == 1 ? info.second_lo : 0x80;
    const std::uint8_t hi = i == 1 ? info.second_hi : 0xBF;
    if (p[i] < lo || p[i] > hi) break;
  }
  if (i == info.length) return i;
  *invalid_length = i;  // the lead byte plus the continuation bytes that were still acceptable
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  std::size_t bad = 0;
  while (i < s.size()) {
    // ASCII fast path: most text is mostly ASCII.
    if (static_cast<std::uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s.substr(i), &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::size_t append_repaired_utf8(std::string_view s, std::string& out) {
  std::size_t replaced = 0;
  std::size_t i = 0;
  std::size_t run_start = 0;  // start of the pending run of valid bytes, copied in one go
  while (i < s.size()) {
    if (static_cast<std::uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence_length(s.substr(i), &bad);
    if (n != 0) {
      i += n;
      continue;
    }
    out.append(s.substr(run_start, i - run_start));
    out.append(kReplacementCharacter);
    ++replaced;
    i += bad;
    run_start = i;
  }
  out.append(s.substr(run_start));
  return replaced;
}

void append_utf8(char32_t cp, std::string& out) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    out.append(kReplacementCharacter);
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace moeslim::text
