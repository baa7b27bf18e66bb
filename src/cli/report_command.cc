// `moeslim report`: makes quant_report.html again from an output directory's quant_report.json (after an edit,
// an upgrade of moeslim, or for an output written before the page existed).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/json_file.h"
#include "report/html_report.h"

namespace moeslim::cli {
namespace {

struct ReportOptions {
  std::string dir;
  std::string output;  // default: <dir>/quant_report.html
};

int run_report(const ReportOptions& o) {
  const std::filesystem::path json_path = std::filesystem::path(o.dir) / "quant_report.json";
  if (!std::filesystem::exists(json_path)) {
    throw Error(ErrorCode::kNotFound, "no quant_report.json here: is this a `moeslim quant` output directory?",
                json_path.string());
  }
  const nlohmann::ordered_json report = io::read_ordered_json_file(json_path);
  const std::filesystem::path out =
      o.output.empty() ? std::filesystem::path(o.dir) / "quant_report.html" : std::filesystem::path(o.output);
  try {
    report::write_quant_report_html(report, out);
  } catch (const Error& e) {
    // The page's errors name a field of the report; the file they are in is the JSON (write errors name theirs).
    if (e.code() == ErrorCode::kFormat) rethrow_with_file(e, json_path.string());
    throw;
  }
  log_info("report: wrote {} from {}", out.string(), json_path.string());
  std::printf("%s\n", out.string().c_str());
  return 0;
}

}  // namespace

CommandRunner register_report(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report",
      "Write quant_report.html, the page to read after a quant run, from the quant_report.json in DIR (moeslim\n"
      "quant writes both; this makes the page again, e.g. for an output written before it existed). One file,\n"
      "no scripts and nothing fetched, readable in any browser and in a terminal browser's text mode:\n"
      "  the verdict (perplexity change, KL and top-1 when quant ran with --eval_data; else the mean layer error)\n"
      "    and what to look at before shipping;\n"
      "  relative error per layer, layers above twice the median marked (candidates for higher precision);\n"
      "  router agreement per layer (whether quantization changed which experts the router picks);\n"
      "  calibration tokens per expert and layer, starved experts crossed out and listed;\n"
      "  the smoothing α/β per layer and subgraph, and the search's loss curve for the worst layer;\n"
      "  time per phase, peak memory against the estimate, and the recipe as run.\n"
      "Data the report does not hold (an older moeslim's) is said to be absent; a field of the wrong type is an\n"
      "error naming it. The page is written atomically (a temporary file, then a rename). Prints its path.\n"
      "Examples:\n"
      "  moeslim report out/qwen3-30b-w4a8\n"
      "  moeslim report out/qwen3-30b-w4a8 --output /tmp/page.html\n"
      "  bash scripts/render_report.sh out/qwen3-30b-w4a8 page.png   (a PNG of it, headless Chromium)");
  sub->add_option("dir", o->dir, "Output directory of `moeslim quant` (holds quant_report.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--output", o->output, "Where to write the page (default: DIR/quant_report.html)");
  return [o] { return run_report(*o); };
}

}  // namespace moeslim::cli
