// Text and numbers as they go into the report page. The page is polyglot XHTML (an XML parser must accept
// it), and every string in it comes from quant_report.json, which a user may have edited: so every string is
// escaped here, and characters XML 1.0 cannot hold at all are replaced rather than passed on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moeslim::report {

// `text` with & < > " ' as entities, each ill-formed UTF-8 sequence and each character XML 1.0 forbids (C0
// controls other than tab, newline and carriage return; U+FFFE, U+FFFF) replaced by U+FFFD. Safe in element
// content and in quoted attribute values.
std::string escape_xml(std::string_view text);

// A number for reading: `significant` digits, no exponent between 1e-4 and 1e9, no trailing zeros ("0.00089",
// "81.29", "12034", "2"); "NaN" / "inf" for the values nlohmann::json writes as null (the report reader turns null into NaN).
std::string format_number(double value, int significant = 4);
// `fraction` as a percentage with `decimals` places ("97.05 %"); with a sign when `signed_` ("+0.05 %").
std::string format_percent(double fraction, int decimals = 2, bool signed_ = false);
// Bytes in binary units ("2.82 GiB", "512 KiB", "100 B").
std::string format_bytes(double bytes);
// Seconds as "12.3 s", "4 min 05 s" or "2 h 03 min".
std::string format_seconds(double seconds);
// A coordinate in an SVG attribute: at most two decimals, no exponent, no "-0".
std::string svg_number(double value);

}  // namespace moeslim::report
