#include "report/html_blocks.h"

#include <cctype>

#include "report/markup.h"

namespace moeslim::report {
namespace {

std::string class_attribute(const std::string& css_class) {
  return css_class.empty() ? "" : " class=\"" + escape_xml(css_class) + "\"";
}

// "12", "-0.5 %", "1.2e-05", "3.1 GiB": right-aligned in tables, so their digits line up.
bool looks_numeric(const std::string& text) {
  return !text.empty() &&
         (std::isdigit(static_cast<unsigned char>(text[0])) ||
          ((text[0] == '-' || text[0] == '+') && text.size() > 1 && std::isdigit(static_cast<unsigned char>(text[1]))));
}

}  // namespace

std::string section(const std::string& id, const std::string& title_text, const std::string& html) {
  return "<section id=\"" + escape_xml(id) + "\"><h2>" + escape_xml(title_text) + "</h2>" + html + "</section>\n";
}

std::string paragraph(const std::string& text, const std::string& css_class) {
  return "<p" + class_attribute(css_class) + ">" + escape_xml(text) + "</p>";
}

std::string absent(const std::string& text) { return paragraph(text, "absent"); }

std::string table(const std::vector<std::string>& header_text, const std::vector<std::vector<std::string>>& rows_text,
                  const std::string& css_class) {
  std::string s = "<table" + class_attribute(css_class) + "><thead><tr>";
  for (const std::string& h : header_text) s += "<th>" + escape_xml(h) + "</th>";
  s += "</tr></thead><tbody>";
  for (const auto& row : rows_text) {
    s += "<tr>";
    for (const std::string& cell : row) {
      s += (looks_numeric(cell) ? "<td class=\"n\">" : "<td>") + escape_xml(cell) + "</td>";
    }
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

std::string bullet_list(const std::vector<std::string>& items_text, const std::string& item_class) {
  std::string s = "<ul>";
  for (const std::string& item : items_text)
    s += "<li" + class_attribute(item_class) + ">" + escape_xml(item) + "</li>";
  return s + "</ul>";
}

std::string details(const std::string& summary_text, const std::string& html) {
  return "<details><summary>" + escape_xml(summary_text) + "</summary>" + html + "</details>";
}

std::string figure(const std::string& svg_html, const std::string& caption_text) {
  return "<figure>" + svg_html + "<figcaption>" + escape_xml(caption_text) + "</figcaption></figure>";
}

}  // namespace moeslim::report
