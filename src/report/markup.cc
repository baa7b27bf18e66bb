#include "report/markup.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "text/utf8.h"

namespace moeslim::report {

std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t invalid = 0;
    const std::size_t n = text::utf8_sequence_length(text.substr(i), &invalid);
    if (n == 0) {
      out += text::kReplacementCharacter;
      i += invalid;
      continue;
    }
    const std::string_view seq = text.substr(i, n);
    i += n;
    if (n == 1) {
      const char c = seq[0];
      switch (c) {
        case '&': out += "&amp;"; continue;
        case '<': out += "&lt;"; continue;
        case '>': out += "&gt;"; continue;
        case '"': out += "&quot;"; continue;
        case '\'': out += "&#39;"; continue;
        default: break;
      }
      // XML 1.0 has no way to write the other C0 controls, not even as character references.
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
        out += text::kReplacementCharacter;
        continue;
      }
    } else if (seq == "\xEF\xBF\xBE" || seq == "\xEF\xBF\xBF") {  // U+FFFE, U+FFFF: not characters in XML
      out += text::kReplacementCharacter;
      continue;
    }
    out += seq;
  }
  return out;
}

std::string format_number(double value, int significant) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  const double magnitude = std::fabs(value);
  if (magnitude < 1e-4 || magnitude >= 1e9) return fmt::format("{:.{}e}", value, significant - 1);
  // Enough decimals for `significant` digits, never fewer than the integer part needs.
  const int integer_digits = static_cast<int>(std::floor(std::log10(magnitude))) + 1;
  const int decimals = std::max(0, significant - integer_digits);
  std::string s = fmt::format("{:.{}f}", value, decimals);
  // Trailing zeros say nothing ("2", not "2.000"; "0.15", not "0.1500").
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::string format_percent(double fraction, int decimals, bool signed_) {
  if (!std::isfinite(fraction)) return format_number(fraction);
  return signed_ ? fmt::format("{:+.{}f} %", 100.0 * fraction, decimals)
                 : fmt::format("{:.{}f} %", 100.0 * fraction, decimals);
}

std::string format_bytes(double bytes) {
  if (!std::isfinite(bytes)) return format_number(bytes);
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, kUnits[unit]);
}

std::string format_seconds(double seconds) {
  if (!std::isfinite(seconds) || seconds >= 1e12) return format_number(seconds) + " s";
  if (seconds < 60) return fmt::format("{:.{}f} s", seconds, seconds < 10 ? 2 : 1);
  const auto whole = static_cast<long long>(std::llround(seconds));
  if (whole < 3600) return fmt::format("{} min {:02} s", whole / 60, whole % 60);
  return fmt::format("{} h {:02} min", whole / 3600, (whole % 3600) / 60);
}

std::string svg_number(double value) {
  if (!std::isfinite(value)) return "0";
  std::string s = fmt::format("{:.2f}", value);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

}  // namespace moeslim::report
