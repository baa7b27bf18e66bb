// `moeslim report DIR` as a user runs it: the page from an output directory's quant_report.json, --output,
// and the errors (no report; a broken field, named with its file; nothing left behind).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/run_command.h"
#include "common/test_paths.h"
#include "xhtml_document.h"

namespace moeslim::testing {
namespace {

namespace fs = std::filesystem;

fs::path fixture() { return test_data_dir() / "report" / "tiny_w4a8_report.json"; }

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ReportCli, WritesThePageBesideTheReport) {
  TempDir dir("report_cli");
  fs::copy_file(fixture(), dir.path() / "quant_report.json");
  const CommandResult r = run_moeslim("report " + shell_quoted(dir.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  const fs::path page = dir.path() / "quant_report.html";
  EXPECT_EQ(r.out, page.string() + "\n");
  const XhtmlDocument doc(read_whole_file(page));
  ASSERT_TRUE(doc.well_formed()) << doc.errors();
  EXPECT_EQ(doc.count("//h:section"), 7);
  // Written atomically: no temporary file left beside it.
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"quant_report.html", "quant_report.json"}));

  // Again over the existing page: replaced, same bytes (the page depends on the JSON alone).
  const std::string first = read_whole_file(page);
  ASSERT_EQ(run_moeslim("report " + shell_quoted(dir.path())).status, 0);
  EXPECT_EQ(read_whole_file(page), first);
}

TEST(ReportCli, OutputOptionWritesElsewhere) {
  TempDir dir("report_cli_output");
  fs::copy_file(fixture(), dir.path() / "quant_report.json");
  const fs::path out = dir.path() / "elsewhere.html";
  const CommandResult r = run_moeslim("report " + shell_quoted(dir.path()) + " --output " + shell_quoted(out));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir.path() / "quant_report.html"));
}

TEST(ReportCli, ADirectoryWithoutAReportIsAnError) {
  TempDir dir("report_cli_none");
  const CommandResult r = run_moeslim("report " + shell_quoted(dir.path()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("quant_report.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not-found"), std::string::npos) << r.err;
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(ReportCli, ABrokenFieldIsNamedWithItsFileAndNothingIsWritten) {
  TempDir dir("report_cli_bad");
  auto report = nlohmann::ordered_json::parse(read_whole_file(fixture()));
  report["per_layer"][1]["relative_error"] = "tiny";
  std::ofstream(dir.path() / "quant_report.json") << report.dump(2);
  const CommandResult r = run_moeslim("report " + shell_quoted(dir.path()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find((dir.path() / "quant_report.json").string() + ": 'per_layer[1].relative_error': is a string"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"quant_report.json"}));

  std::ofstream(dir.path() / "quant_report.json") << "{\"per_layer\": [";  // not JSON at all
  const CommandResult truncated = run_moeslim("report " + shell_quoted(dir.path()));
  EXPECT_EQ(truncated.status, 1);
  EXPECT_NE(truncated.err.find("quant_report.json"), std::string::npos) << truncated.err;
  EXPECT_EQ(truncated.err.find("terminate"), std::string::npos) << truncated.err;
}

TEST(ReportCli, HelpTeaches) {
  const CommandResult r = run_moeslim("report --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Example"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--output"), std::string::npos) << r.out;
  EXPECT_NE(run_moeslim("--help").out.find("report"), std::string::npos);
}

}  // namespace
}  // namespace moeslim::testing
