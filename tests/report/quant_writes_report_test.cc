// A whole `moeslim quant` run writes quant_report.html beside quant_report.json, and it is the page that
// `moeslim report` makes from that JSON: byte for byte, so the page holds nothing the JSON does not.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli/run_command.h"
#include "common/test_paths.h"
#include "xhtml_document.h"

namespace moeslim::testing {
namespace {

namespace fs = std::filesystem;

TEST(QuantWritesReport, PageBesideTheJsonEqualsWhatReportMakes) {
  TempDir dir("quant_report_page");
  const fs::path out = dir.path() / "out";
  const CommandResult q = run_moeslim("quant --model_path " + shell_quoted(bundled_model_dir()) + " --save_path " +
                                      shell_quoted(out) + " --layer_count 2");
  ASSERT_EQ(q.status, 0) << q.err;
  const fs::path page = out / "quant_report.html";
  ASSERT_TRUE(fs::exists(page));
  const std::string written = read_whole_file(page);
  const XhtmlDocument doc(written);
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count("//h:section[@id='layer-error']//svg:rect[contains(@class, 'bar')]"), 2);
  EXPECT_EQ(doc.count("//h:section[@id='expert-tokens']//svg:rect[contains(@class, 'cell')]"), 2 * 16);

  const fs::path again = dir.path() / "again.html";
  const CommandResult r = run_moeslim("report " + shell_quoted(out) + " --output " + shell_quoted(again));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(read_whole_file(again) == written) << "the page quant wrote differs from the one report makes";
}

}  // namespace
}  // namespace moeslim::testing
