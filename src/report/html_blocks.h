// The few XHTML building blocks the report page is made of. Arguments named `text` are plain text and are
// escaped here; arguments named `html` are markup already (from these functions or svg_chart.h).
#pragma once

#include <string>
#include <vector>

namespace moeslim::report {

// <section id=…><h2>title</h2>html</section>
std::string section(const std::string& id, const std::string& title_text, const std::string& html);
std::string paragraph(const std::string& text, const std::string& css_class = {});
// A paragraph for data the report does not hold, worded as "<what>: not in this report" or as given.
std::string absent(const std::string& text);
// A table of plain-text cells; the first row is the header. Cells of numbers are right-aligned.
std::string table(const std::vector<std::string>& header_text, const std::vector<std::vector<std::string>>& rows_text,
                  const std::string& css_class = {});
// <ul> of plain-text items, each <li class=item_class>.
std::string bullet_list(const std::vector<std::string>& items_text, const std::string& item_class = {});
// A collapsible block (closed by default in browsers; terminal browsers show it).
std::string details(const std::string& summary_text, const std::string& html);
// <figure> holding a chart and its caption.
std::string figure(const std::string& svg_html, const std::string& caption_text);

}  // namespace moeslim::report
