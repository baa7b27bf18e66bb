// `moeslim inspect`: validates a quantized output directory against msModelSlim's output format.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/registry.h"

namespace moeslim::cli {
namespace {

int run_inspect(const std::string& dir) {
  const formats::InspectReport report = formats::inspect_dir(dir);
  std::fputs(formats::format_inspect_report(report).c_str(), stdout);
  std::fflush(stdout);
  if (!report.ok()) {
    throw Error(ErrorCode::kFormat,
                fmt::format("{} violation(s) of the msModelSlim output format (listed above)", report.violations.size()),
                dir);
  }
  return 0;
}

}  // namespace

CommandRunner register_inspect(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Check a quantized output directory (moeslim quant, or msModelSlim itself) against msModelSlim's output\n"
      "format, as MindIE and vLLM-Ascend load it: the description file, the shard index against the shards, each\n"
      "linear's tensors, dtypes and shapes per scheme (W8A8, W8A8_DYNAMIC, FLOAT), weight and offset ranges,\n"
      "deq_scale = input_scale * weight_scale and the quant_bias identity bit for bit, NaN/Inf, and config.json.\n"
      "Prints a summary table per quantization type and every violation by tensor name; exit status 1 if any.\n"
      "Example: moeslim inspect out/qwen3-30b-w8a8");
  sub->add_option("dir", *dir, "Quantized output directory")->required()->check(CLI::ExistingDirectory);
  return [dir] { return run_inspect(*dir); };
}

}  // namespace moeslim::cli
