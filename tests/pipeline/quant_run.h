// What the whole-run quant tests share: run `moeslim quant` and read its report, and check an output with
// `moeslim inspect`.
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_command.h"

namespace moeslim::testing {

inline nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(read_whole_file(p)); }

// Runs quant on `model_dir` into `out` with `extra` flags and returns quant_report.json; fails the test (with
// stderr) and returns null on error. Every run's writer must have been told its tensors right
// (formats/writer_calls.h): each one written once, in place.
inline nlohmann::json quantize(const std::filesystem::path& model_dir, const std::filesystem::path& out,
                               const std::string& extra) {
  const CommandResult r =
      run_moeslim("quant --model_path " + shell_quoted(model_dir) + " --save_path " + shell_quoted(out) + " " + extra);
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status != 0) return nlohmann::json();
  nlohmann::json report = read_json(out / "quant_report.json");
  EXPECT_GT(report.at("output_tensors").get<std::size_t>(), 0u);
  EXPECT_EQ(report.at("output_tensors_written_once"), report.at("output_tensors")) << extra;
  return report;
}

inline void expect_inspect_accepts(const std::filesystem::path& dir) {
  const CommandResult r = run_moeslim("inspect " + shell_quoted(dir));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("OK"), std::string::npos) << r.out;
}

}  // namespace moeslim::testing
