// quant_report.html: the page a user reads after a quant run. One self-contained file (inline SVG and CSS, no
// scripts, nothing fetched), polyglot XHTML so that an XML parser can check it, readable in a terminal browser
// (every chart's facts are also in text). Built from quant_report.json alone, so `moeslim report DIR` can make
// it again for any existing output.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace moeslim::report {

// The page for `report` (quant_report.json as parsed, in its key order). The report is untrusted: a missing
// required field or a field of the wrong type throws Error(kFormat) whose field is its path in the report
// (e.g. "per_layer[2].relative_error"); data that is optional and absent is said to be absent on the page.
std::string render_quant_report_html(const nlohmann::ordered_json& report);

// Renders `report` and writes the page to `path` atomically (a temporary file beside it, then a rename).
void write_quant_report_html(const nlohmann::ordered_json& report, const std::filesystem::path& path);

}  // namespace moeslim::report
