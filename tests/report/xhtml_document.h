// The report page parsed by a real XML parser (libxml2), for checking that it is well-formed XHTML and for
// counting its parts with XPath (prefix h: XHTML, svg: SVG).
#pragma once

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <string>

namespace moeslim::testing {

class XhtmlDocument {
 public:
  explicit XhtmlDocument(const std::string& text) {
    xmlSetStructuredErrorFunc(&errors_, &collect_error);
    // No network, no entity substitution, no DTD loading: only well-formedness is in question.
    doc_ = xmlReadMemory(text.data(), static_cast<int>(text.size()), "quant_report.html", "UTF-8", XML_PARSE_NONET);
    xmlSetStructuredErrorFunc(nullptr, nullptr);
    if (doc_ != nullptr) {
      xpath_ = xmlXPathNewContext(doc_);
      xmlXPathRegisterNs(xpath_, BAD_CAST "h", BAD_CAST "http://www.w3.org/1999/xhtml");
      xmlXPathRegisterNs(xpath_, BAD_CAST "svg", BAD_CAST "http://www.w3.org/2000/svg");
    }
  }
  ~XhtmlDocument() {
    if (xpath_ != nullptr) xmlXPathFreeContext(xpath_);
    if (doc_ != nullptr) xmlFreeDoc(doc_);
  }
  XhtmlDocument(const XhtmlDocument&) = delete;
  XhtmlDocument& operator=(const XhtmlDocument&) = delete;

  // Parsed without a single error or warning.
  bool well_formed() const { return doc_ != nullptr && errors_.empty(); }
  const std::string& errors() const { return errors_; }

  // The number of nodes `xpath` selects; -1 when the page did not parse or the expression is wrong.
  int count(const std::string& xpath) const {
    xmlXPathObjectPtr r = evaluate(xpath);
    if (r == nullptr) return -1;
    const int n = r->type == XPATH_NODESET && r->nodesetval != nullptr ? r->nodesetval->nodeNr : -1;
    xmlXPathFreeObject(r);
    return n;
  }

  // The string value of `xpath` (the text of the first node it selects).
  std::string text(const std::string& xpath) const {
    xmlXPathObjectPtr r = evaluate(xpath);
    if (r == nullptr) return {};
    xmlChar* s = xmlXPathCastToString(r);
    std::string out = s != nullptr ? reinterpret_cast<const char*>(s) : "";
    xmlFree(s);
    xmlXPathFreeObject(r);
    return out;
  }

 private:
  xmlXPathObjectPtr evaluate(const std::string& xpath) const {
    if (xpath_ == nullptr) return nullptr;
    return xmlXPathEvalExpression(BAD_CAST xpath.c_str(), xpath_);
  }

  static void collect_error(void* errors, xmlErrorPtr e) {
    if (e == nullptr) return;
    *static_cast<std::string*>(errors) +=
        "line " + std::to_string(e->line) + ": " + (e->message != nullptr ? e->message : "?");
  }

  std::string errors_;
  xmlDocPtr doc_ = nullptr;
  xmlXPathContextPtr xpath_ = nullptr;
};

// XPath for elements whose class list holds `name` (class="bar marked" holds "bar" and "marked").
inline std::string has_class(const std::string& name) {
  return "contains(concat(' ', normalize-space(@class), ' '), ' " + name + " ')";
}

}  // namespace moeslim::testing
