// quant_report.html from a report of the bundled tiny model (tests/data/report/tiny_w4a8_report.json): parsed by
// libxml2, every section present, and the right number of bars, cells and marks, counted in the page and
// worked out independently here from the JSON. Then the same page with the optional data taken out, hostile
// text, and broken fields, which must be errors naming the field.
#include "report/html_report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/run_command.h"
#include "common/test_paths.h"
#include "core/error.h"
#include "report/markup.h"
#include "xhtml_document.h"

namespace moeslim::testing {
namespace {

using nlohmann::ordered_json;

ordered_json tiny_report() {
  return ordered_json::parse(read_whole_file(test_data_dir() / "report" / "tiny_w4a8_report.json"));
}

// Elements in section `id` matching `path` (relative, e.g. "svg:rect[...]").
std::string in_section(const std::string& id, const std::string& path) {
  return "//h:section[@id='" + id + "']//" + path;
}

std::string bars(const std::string& section_id) { return in_section(section_id, "svg:rect[" + has_class("bar") + "]"); }
std::string marked_bars(const std::string& section_id) {
  return in_section(section_id, "svg:rect[" + has_class("bar") + " and " + has_class("marked") + "]");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

class HtmlReport : public ::testing::Test {
 protected:
  void SetUp() override {
    report_ = tiny_report();
    page_ = report::render_quant_report_html(report_);
  }
  ordered_json report_;
  std::string page_;
};

TEST_F(HtmlReport, IsWellFormedXhtmlWithoutScriptsOrExternalResources) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count("/h:html/h:head/h:title"), 1);
  EXPECT_EQ(doc.count("//h:script"), 0);
  EXPECT_EQ(doc.count("//*[@src or @href]"), 0);  // nothing fetched: no images, links or style sheets
  // The only URLs are the XHTML and SVG namespace names, which nothing fetches.
  const auto occurrences = [&](const std::string& what) {
    int n = 0;
    for (auto at = page_.find(what); at != std::string::npos; at = page_.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("http"), occurrences("xmlns=\"http://www.w3.org/"));
  EXPECT_EQ(page_.rfind("<!DOCTYPE html>", 0), 0u);
}

TEST_F(HtmlReport, HasEverySectionOnce) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  for (const char* id :
       {"verdict", "layer-error", "router-agreement", "expert-tokens", "smoothing", "resources", "recipe"}) {
    EXPECT_EQ(doc.count("//h:section[@id='" + std::string(id) + "']/h:h2"), 1) << id;
  }
  EXPECT_EQ(doc.count("//h:section"), 7);
}

TEST_F(HtmlReport, VerdictStatesPerplexityKlAndTop1) {
  const XhtmlDocument doc(page_);
  const std::string verdict = doc.text("//h:section[@id='verdict']/h:p[@class='verdict']");
  const auto& e = report_["evaluation"];
  EXPECT_NE(verdict.find(report::format_number(e["quantized_perplexity"].get<double>(), 6)), std::string::npos)
      << verdict;
  EXPECT_NE(verdict.find(report::format_percent(e["perplexity_change"].get<double>(), 2, true)), std::string::npos)
      << verdict;
  EXPECT_NE(verdict.find("mean KL " + report::format_number(e["mean_kl"].get<double>(), 3)), std::string::npos)
      << verdict;
  EXPECT_NE(verdict.find("top-1 agreement " + report::format_percent(e["top1_agreement"].get<double>())),
            std::string::npos)
      << verdict;
}

// One bar per layer; marked exactly the layers above twice the median (worked out here from the JSON).
int expected_error_marks(const ordered_json& report) {
  std::vector<double> errors;
  for (const auto& l : report["per_layer"]) errors.push_back(l["relative_error"].get<double>());
  const double m = median(errors);
  return static_cast<int>(std::count_if(errors.begin(), errors.end(), [&](double e) { return e > 2 * m; }));
}

TEST_F(HtmlReport, LayerErrorBarsMarkTheLayersAboveTwiceTheMedian) {
  {
    const XhtmlDocument doc(page_);
    ASSERT_TRUE(doc.well_formed()) << doc.errors();
    EXPECT_EQ(doc.count(bars("layer-error")), 4);
    EXPECT_EQ(expected_error_marks(report_), 0) << "the tiny model's run has no layer that stands out";
    EXPECT_EQ(doc.count(marked_bars("layer-error")), 0);
    // The dashed reference line (twice the median) and its legend.
    EXPECT_EQ(doc.count(in_section("layer-error", "svg:line[@stroke-dasharray]")), 2);
    EXPECT_NE(doc.text("//h:section[@id='layer-error']").find("No layer stands out"), std::string::npos);
  }
  // Layer 2 made four times worse than the others' median: it, and only it, is marked and named.
  ordered_json r = report_;
  r["per_layer"][2]["relative_error"] = 0.15;
  ASSERT_EQ(expected_error_marks(r), 1);
  const XhtmlDocument doc(report::render_quant_report_html(r));
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count(bars("layer-error")), 4);
  EXPECT_EQ(doc.count(marked_bars("layer-error")), 1);
  EXPECT_NE(doc.text("//h:section[@id='layer-error']/h:p[@class='warning']").find("layer 2 (0.15)"),
            std::string::npos)
      << doc.text("//h:section[@id='layer-error']");
  EXPECT_NE(doc.text("//h:section[@id='verdict']").find("above 2 × the median in layer 2:"), std::string::npos)
      << doc.text("//h:section[@id='verdict']");
}

TEST_F(HtmlReport, RouterAgreementHasOneBarPerLayer) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count(bars("router-agreement")), 4);
  std::vector<double> changed;
  for (const auto& l : report_["per_layer"]) changed.push_back(1 - l["router_agreement"]["exact"].get<double>());
  const double m = median(changed);
  EXPECT_EQ(doc.count(marked_bars("router-agreement")),
            std::count_if(changed.begin(), changed.end(), [&](double c) { return c > 2 * m; }));
  // The evaluation's summary and per-layer columns are there.
  EXPECT_NE(doc.text("//h:section[@id='router-agreement']").find("On the evaluation text"), std::string::npos);
  EXPECT_EQ(doc.count(in_section("router-agreement", "h:table/h:thead/h:tr/h:th")), 6);
}

// 4 layers × 16 experts: 64 cells; a cross for every expert under starved_expert_min_tokens, and each listed.
TEST_F(HtmlReport, HeatMapHasACellPerExpertAndCrossesTheStarvedOnes) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  const std::int64_t min_tokens = report_["starved_expert_min_tokens"].get<std::int64_t>();
  int starved = 0, layers_with_starved = 0;
  for (const auto& l : report_["per_layer"]) {
    const auto n = std::count_if(l["expert_tokens"].begin(), l["expert_tokens"].end(),
                                 [&](const auto& t) { return t.template get<std::int64_t>() < min_tokens; });
    starved += static_cast<int>(n);
    layers_with_starved += n > 0 ? 1 : 0;
  }
  EXPECT_EQ(starved, 5) << "the fixture's threshold leaves 5 experts starved, so the marks are tested";
  EXPECT_EQ(doc.count(in_section("expert-tokens", "svg:rect[" + has_class("cell") + "]")), 64);
  EXPECT_EQ(
      doc.count(in_section("expert-tokens", "svg:rect[" + has_class("cell") + " and " + has_class("marked") + "]")),
      starved);
  EXPECT_EQ(doc.count(in_section("expert-tokens", "svg:path[" + has_class("cross") + "]")), starved);
  EXPECT_EQ(doc.count(in_section("expert-tokens", "h:li[@class='starved']")), layers_with_starved);
  // The text says so too (terminal browsers show no SVG), and the verdict lists it.
  EXPECT_NE(doc.text("//h:section[@id='expert-tokens']").find(std::to_string(starved) + " of 64 experts starved"),
            std::string::npos);
  EXPECT_NE(doc.text("//h:section[@id='verdict']").find(std::to_string(starved) + " of 64 experts starved"),
            std::string::npos);
}

// A row per layer and subgraph; the loss curve of the layer with the largest error that has one, its choice ringed.
TEST_F(HtmlReport, SmoothingTableAndTheWorstLayersLossCurve) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  int subgraphs = 0;
  const ordered_json* worst = nullptr;
  for (const auto& l : report_["per_layer"]) {
    subgraphs += static_cast<int>(l["smoothing"].size());
    bool has_curve = false;
    for (const auto& [name, c] : l["smoothing"].items()) has_curve = has_curve || c.contains("search");
    if (has_curve && (worst == nullptr || l["relative_error"] > (*worst)["relative_error"])) worst = &l;
  }
  EXPECT_EQ(doc.count(in_section("smoothing", "h:table[@class='smoothing']/h:tbody/h:tr")), subgraphs);
  EXPECT_EQ(subgraphs, 8);  // ov and norm-linear in each of the 4 layers
  ASSERT_NE(worst, nullptr);
  int points = 0, curves = 0;
  for (const auto& [name, c] : (*worst)["smoothing"].items()) {
    if (!c.contains("search")) continue;
    points += static_cast<int>(c["search"].size());
    ++curves;
  }
  EXPECT_EQ(doc.count(in_section("smoothing", "svg:svg")), curves);
  EXPECT_EQ(doc.count(in_section("smoothing", "svg:circle[" + has_class("point") + "]")), points);
  EXPECT_EQ(doc.count(in_section("smoothing", "svg:circle[" + has_class("marked") + "]")), curves);
  EXPECT_NE(doc.text("//h:section[@id='smoothing']")
                .find("layer " + std::to_string((*worst)["layer"].get<int>()) +
                      ", the layer with the largest relative error"),
            std::string::npos);
}

TEST_F(HtmlReport, PhaseTimesMemoryAndRecipe) {
  const XhtmlDocument doc(page_);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  const int phases = static_cast<int>(report_["timing_seconds"].size()) - 1;  // all but "total"
  EXPECT_EQ(
      doc.count(in_section("resources", "svg:svg[@aria-label='Time per phase']//svg:rect[" + has_class("bar") + "]")),
      phases);
  EXPECT_EQ(doc.count(in_section("resources", "svg:svg[@aria-label='Peak memory against the estimate']//svg:rect[" +
                                                  has_class("bar") + "]")),
            2);
  EXPECT_EQ(doc.count(in_section("recipe", "h:ol[@class='steps']/h:li")), static_cast<int>(report_["steps"].size()));
  EXPECT_NE(doc.text("//h:section[@id='recipe']").find(report_["recipe"].get<std::string>()), std::string::npos);
}

// A report of today's quant (no router agreement, search curves, threshold) or one without --eval_data: the
// page says what is absent, and is still well-formed.
TEST_F(HtmlReport, OptionalDataAbsentIsSaidToBeAbsent) {
  ordered_json r = report_;
  r.erase("evaluation");
  r.erase("starved_expert_min_tokens");
  for (auto& l : r["per_layer"]) {
    l.erase("router_agreement");
    for (auto& [name, c] : l["smoothing"].items()) c.erase("search");
  }
  const std::string page = report::render_quant_report_html(r);
  const XhtmlDocument doc(page);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_NE(doc.text("//h:section[@id='router-agreement']").find("not measured in this report"), std::string::npos);
  EXPECT_EQ(doc.count(bars("router-agreement")), 0);
  EXPECT_NE(doc.text("//h:section[@id='smoothing']").find("loss curve: not measured in this report"),
            std::string::npos);
  EXPECT_NE(doc.text("//h:section[@id='verdict']").find("No evaluation in this report"), std::string::npos);
  EXPECT_NE(doc.text("//h:section[@id='verdict']").find("Mean relative layer error"), std::string::npos);
  // Without a threshold in the report, starved means no token at all: none in the tiny model's run.
  EXPECT_EQ(doc.count(in_section("expert-tokens", "svg:path[" + has_class("cross") + "]")), 0);
  EXPECT_NE(doc.text("//h:section[@id='expert-tokens']").find("No starved expert"), std::string::npos);
  EXPECT_EQ(doc.count(in_section("expert-tokens", "svg:rect[" + has_class("cell") + "]")), 64);

  // A report with nothing optional at all: every section still there, each saying what it lacks.
  const ordered_json bare = {{"per_layer", {{{"layer", 0}, {"relative_error", 0.01}}}}};
  const XhtmlDocument bare_doc(report::render_quant_report_html(bare));
  ASSERT_TRUE(bare_doc.well_formed()) << bare_doc.errors();
  EXPECT_EQ(bare_doc.count("//h:section"), 7);
  EXPECT_GE(bare_doc.count("//h:p[@class='absent']"), 6);
}

TEST_F(HtmlReport, HostileTextIsEscapedAndThePageStaysWellFormed) {
  ordered_json r = report_;
  r["recipe"] = "<script>alert(1)</script> & \"quotes\" 'too'";
  r["model_path"] = std::string("bell\x01 and \xEF\xBF\xBF non-character");
  r["steps"][0]["step"] = "]]> <!-- -->";
  r["per_layer"][0]["weight_fallbacks"] = {{{"module", "a<b>"}, {"reason", "x & y"}}};
  const std::string page = report::render_quant_report_html(r);
  const XhtmlDocument doc(page);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count("//h:script"), 0);
  EXPECT_NE(doc.text("/h:html/h:head/h:title").find("<script>alert(1)</script> & \"quotes\" 'too'"), std::string::npos);
  EXPECT_EQ(page.find('\x01'), std::string::npos);
  EXPECT_EQ(doc.count("//h:table[@class='fallbacks']/h:tbody/h:tr"), 1);
}

// nlohmann::json writes NaN as null: such a layer is shown as "NaN" and named in the verdict, not rejected.
TEST_F(HtmlReport, NullNumbersAreNotANumber) {
  ordered_json r = report_;
  r["per_layer"][2]["relative_error"] = nullptr;
  const XhtmlDocument doc(report::render_quant_report_html(r));
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count(bars("layer-error")), 3);
  EXPECT_NE(doc.text("//h:section[@id='verdict']").find("not a number (NaN or infinite) in layer 2:"),
            std::string::npos)
      << doc.text("//h:section[@id='verdict']");
}

// Qwen3-235B's shape (94 layers × 128 experts), extreme values included: every cell drawn, the page stays
// small enough for the output's size estimate (a few MiB beside the tokenizer), and extremes draw no NaN.
TEST(HtmlReportScale, A235bReportHasEveryCellAndStaysSmall) {
  ordered_json r = {{"per_layer", ordered_json::array()},
                    {"timing_seconds", {{"float pass", 1e300}, {"total", 1e300}}},
                    {"starved_expert_min_tokens", 2}};
  for (int l = 0; l < 94; ++l) {
    ordered_json tokens = ordered_json::array();
    for (int e = 0; e < 128; ++e) tokens.push_back((l * 131 + e * 17) % 5000);
    ordered_json choice = {{"alpha", 0.5}, {"beta", 0.5}, {"searched", true}, {"error", 1e-3}};
    if (l == 93) {
      choice["search"] = {{{"alpha", 0.0}, {"beta", 1.0}, {"error", -1e308}}, {{"alpha", 0.5}, {"beta", 0.5}, {"error", 1e308}}};
    }
    r["per_layer"].push_back({{"layer", l},
                              {"relative_error", l == 93 ? 1e308 : 0.01 + 0.0001 * l},
                              {"expert_tokens", tokens},
                              {"smoothing", {{"ov", choice}}}});
  }
  const std::string page = report::render_quant_report_html(r);
  EXPECT_LT(page.size(), 3u << 20);
  const XhtmlDocument doc(page);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count(in_section("expert-tokens", "svg:rect[" + has_class("cell") + "]")), 94 * 128);
  EXPECT_EQ(doc.count(bars("layer-error")), 94);
  EXPECT_EQ(doc.count(marked_bars("layer-error")), 1);
  EXPECT_EQ(page.find("nan"), std::string::npos);  // no coordinate came out as NaN
}

struct BadField {
  std::string field;                        // the path the error must name
  std::function<void(ordered_json&)> edit;  // breaks the report there
};

TEST(HtmlReportInput, EachBrokenFieldIsAnErrorNamingIt) {
  const std::vector<BadField> cases = {
      {"per_layer", [](ordered_json& r) { r.erase("per_layer"); }},
      {"per_layer", [](ordered_json& r) { r["per_layer"] = "four"; }},
      {"per_layer[2].relative_error", [](ordered_json& r) { r["per_layer"][2]["relative_error"] = "small"; }},
      {"per_layer[1].relative_error", [](ordered_json& r) { r["per_layer"][1].erase("relative_error"); }},
      {"per_layer[0].relative_error", [](ordered_json& r) { r["per_layer"][0]["relative_error"] = -0.5; }},
      {"per_layer[3].layer", [](ordered_json& r) { r["per_layer"][3]["layer"] = 1.5; }},
      {"per_layer[1].expert_tokens[3]", [](ordered_json& r) { r["per_layer"][1]["expert_tokens"][3] = -7; }},
      {"per_layer[1].expert_tokens",
       [](ordered_json& r) {
         r["per_layer"][1]["expert_tokens"] = {{"a", 1}};
       }},
      {"per_layer[0].experts_without_tokens[0]",
       [](ordered_json& r) { r["per_layer"][0]["experts_without_tokens"] = {99}; }},
      {"per_layer[0].smoothing.ov.alpha", [](ordered_json& r) { r["per_layer"][0]["smoothing"]["ov"]["alpha"] = "a"; }},
      {"per_layer[0].smoothing.ov.searched",
       [](ordered_json& r) { r["per_layer"][0]["smoothing"]["ov"]["searched"] = 1; }},
      {"per_layer[3].smoothing.ov.search[4].error",
       [](ordered_json& r) { r["per_layer"][3]["smoothing"]["ov"]["search"][4].erase("error"); }},
      {"per_layer[2].router_agreement.exact",
       [](ordered_json& r) { r["per_layer"][2]["router_agreement"]["exact"] = 1.5; }},
      {"per_layer[0].weight_fallbacks[0].reason",
       [](ordered_json& r) {
         r["per_layer"][0]["weight_fallbacks"] = {{{"module", "m"}}};
       }},
      {"evaluation.top1_agreement", [](ordered_json& r) { r["evaluation"]["top1_agreement"] = 97; }},
      {"evaluation.float_perplexity", [](ordered_json& r) { r["evaluation"].erase("float_perplexity"); }},
      {"evaluation.router_agreement.per_layer[1]",
       [](ordered_json& r) { r["evaluation"]["router_agreement"]["per_layer"][1] = "high"; }},
      {"starved_expert_min_tokens", [](ordered_json& r) { r["starved_expert_min_tokens"] = -1; }},
      {"timing_seconds.anti_statistics", [](ordered_json& r) { r["timing_seconds"]["anti_statistics"] = "1 s"; }},
      {"timing_seconds",
       [](ordered_json& r) {
         r["timing_seconds"] = {1, 2};
       }},
      {"peak_rss_bytes", [](ordered_json& r) { r["peak_rss_bytes"] = "3 GiB"; }},
      {"threads",
       [](ordered_json& r) {
         r["threads"] = {{"n", 2}};
       }},
      {"steps[0].step", [](ordered_json& r) { r["steps"][0]["step"] = 3; }},
      {"steps[1]", [](ordered_json& r) { r["steps"][1] = 3; }},
  };
  for (const BadField& c : cases) {
    ordered_json r = tiny_report();
    c.edit(r);
    try {
      report::render_quant_report_html(r);
      ADD_FAILURE() << c.field << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << c.field;
      EXPECT_EQ(e.field(), c.field) << e.what();
      EXPECT_FALSE(e.detail().empty()) << c.field;
    }
  }
  // Not an object at all.
  EXPECT_THROW(report::render_quant_report_html(ordered_json::array()), Error);
}

TEST(Markup, EscapesAndRepairsText) {
  EXPECT_EQ(report::escape_xml("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;");
  EXPECT_EQ(report::escape_xml("α β ‖x‖"), "α β ‖x‖");
  EXPECT_EQ(report::escape_xml("tab\tnewline\n"), "tab\tnewline\n");
  EXPECT_EQ(report::escape_xml(std::string("nul\0x", 5)), "nul\xEF\xBF\xBDx");
  EXPECT_EQ(report::escape_xml("bad \xC3 utf8"), "bad \xEF\xBF\xBD utf8");
  EXPECT_EQ(report::escape_xml("\xEF\xBF\xBE"), "\xEF\xBF\xBD");
}

TEST(Markup, FormatsNumbersForReading) {
  EXPECT_EQ(report::format_number(81.287512), "81.29");
  EXPECT_EQ(report::format_number(81.287512, 6), "81.2875");
  EXPECT_EQ(report::format_number(0.00089123, 3), "0.000891");
  EXPECT_EQ(report::format_number(12034), "12034");
  EXPECT_EQ(report::format_number(2.0), "2");
  EXPECT_EQ(report::format_number(0.15), "0.15");
  EXPECT_EQ(report::format_number(0), "0");
  EXPECT_EQ(report::format_number(NAN), "NaN");
  EXPECT_EQ(report::format_number(1.5e-7, 2), "1.5e-07");
  EXPECT_EQ(report::format_percent(0.0005, 2, true), "+0.05 %");
  EXPECT_EQ(report::format_bytes(3.0 * 1024 * 1024 * 1024), "3.00 GiB");
  EXPECT_EQ(report::format_seconds(125), "2 min 05 s");
  EXPECT_EQ(report::svg_number(-0.001), "0");
  EXPECT_EQ(report::svg_number(12.5), "12.5");
}

}  // namespace
}  // namespace moeslim::testing
