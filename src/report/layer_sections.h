// The report page's per-layer sections: relative error, router agreement, calibration tokens per expert, and
// the smoothing choices. Each is a <section> with a chart and the same facts as text (tables, lists), so that
// a terminal browser, which shows no SVG, loses nothing.
#pragma once

#include <string>

#include "report/report_data.h"
#include "report/report_findings.h"

namespace moeslim::report {

std::string layer_error_section(const ReportData& data, const Findings& findings);
std::string router_section(const ReportData& data, const Findings& findings);
std::string expert_tokens_section(const ReportData& data, const Findings& findings);
std::string smoothing_section(const ReportData& data, const Findings& findings);

}  // namespace moeslim::report
