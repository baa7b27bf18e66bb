// `moeslim quant` under faults, and its determinism: a run killed (SIGKILL) at any point leaves --save_path
// absent or complete, and the next run cleans up and succeeds; a write failure (a file-size limit) and Ctrl-C
// end with a clear error and no partial output; the same command writes byte-identical files across runs and
// thread counts. Runs on the bundled tiny model with two layers and short prompt sets so each run takes
// seconds.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "common/test_paths.h"

extern char** environ;

namespace moeslim::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The first `n` prompts of a bundled prompt set, as a JSON array file in `dir`.
fs::path prompt_subset(const fs::path& dir, const std::string& file, std::size_t n) {
  const json all = json::parse(read_whole_file(bundled_data_dir() / file));
  json some = json::array();
  for (std::size_t i = 0; i < n && i < all.size(); ++i) some.push_back(all[i]);
  const fs::path out = dir / file;
  std::ofstream(out) << some.dump();
  return out;
}

const std::vector<std::string> kW8A8 = {"--batch_size", "2"};
const std::vector<std::string> kW4A8 = {"--model_type", "Qwen3-30B", "--quant_type", "w4a8"};
// Rotation (per read with small expert groups), every smoothing subgraph and GPTQ's Hessians and factors.
const std::vector<std::string> kRotGptq = {
    "--config", (source_dir() / "configs" / "qwen3_moe" / "qwen3-moe-w4a8-rot-gptq.yaml").string()};

// A quant command line on the tiny model: `recipe_flags` picks the flow.
struct QuantCommand {
  fs::path anti, calib;
  std::vector<std::string> args(const fs::path& save, const std::string& threads,
                                const std::vector<std::string>& recipe_flags) const {
    std::vector<std::string> a = {moeslim_exe().string(), "quant",         "--model_path",
                                  bundled_model_dir().string(),             "--save_path",
                                  save.string(),        "--layer_count",    "2",
                                  "--calib_dataset",    calib.string(),     "--threads",
                                  threads};
    a.insert(a.end(), recipe_flags.begin(), recipe_flags.end());
    if (recipe_flags == kW8A8) a.insert(a.end(), {"--anti_dataset", anti.string()});  // v1 has no anti set
    return a;
  }
};

// Starts the command with its output discarded; returns the pid.
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << args[0];
  return pid;
}

// The exit status as a shell reports it (128 + signal when killed).
int wait_for(pid_t pid) {
  int raw = 0;
  while (::waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

std::string shell_line(const std::vector<std::string>& args) {
  std::string line;
  for (std::size_t i = 1; i < args.size(); ++i) line += (i > 1 ? " " : "") + shell_quoted(args[i]);
  return line;
}

// Every file of an output directory: name -> contents. quant_report.json without what varies run to run
// (timing_seconds, peak_rss_bytes) or with the thread count (threads, and the memory estimate, which counts
// each thread's expert buffers); quant_report.html, the page made from it, only by name.
std::map<std::string, std::string> output_files(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == "quant_report.html") {
      files["quant_report.html"] = "";
      continue;
    }
    std::string content = read_whole_file(e.path());
    if (e.path().filename() == "quant_report.json") {
      json report = json::parse(content);
      report.erase("threads");
      report.erase("experts_per_group");
      report.erase("timing_seconds");
      report.erase("peak_rss_bytes");
      report.erase("expected_peak_memory_bytes");
      content = report.dump(2);
    }
    files[e.path().filename().string()] = std::move(content);
  }
  return files;
}

void expect_same_files(const fs::path& a, const fs::path& b) {
  const auto fa = output_files(a);
  const auto fb = output_files(b);
  ASSERT_EQ(fa.size(), fb.size()) << a << " vs " << b;
  for (const auto& [name, content] : fa) {
    const auto it = fb.find(name);
    ASSERT_NE(it, fb.end()) << name << " missing from " << b;
    EXPECT_TRUE(content == it->second) << name << " differs between " << a << " and " << b;
  }
}

// What moeslim leaves beside `save` (temporary or moved-aside directories).
std::vector<std::string> leftovers(const fs::path& save) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(save.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.rfind(save.filename().string() + ".moeslim-", 0) == 0) names.push_back(name);
  }
  return names;
}

class QuantFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    command_.anti = prompt_subset(dir_.path(), "qwen3-moe_anti_prompt_50.json", 4);
    command_.calib = prompt_subset(dir_.path(), "qwen3-moe_calib_prompt_50.json", 4);
  }
  // A complete run into `save`; returns its wall time in seconds.
  double run_to_completion(const fs::path& save, const std::string& threads,
                           const std::vector<std::string>& flow, const std::string& extra = "") {
    const auto start = Clock::now();
    const CommandResult r = run_moeslim(shell_line(command_.args(save, threads, flow)) + " " + extra);
    EXPECT_EQ(r.status, 0) << r.err;
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  TempDir dir_{"quant_faults"};
  QuantCommand command_;
};

// SIGKILL at several points of a run, fresh and replacing an existing output with --force: --save_path is
// always absent or a complete output identical to an uninterrupted run's, and the next run removes what the
// killed one left and succeeds.
TEST_F(QuantFaults, AKilledRunNeverLeavesAHalfWrittenOutput) {
  const fs::path reference = dir_.path() / "reference";
  const double seconds = run_to_completion(reference, "1", kW8A8);
  for (const bool replace : {false, true}) {
    for (const double fraction : {0.1, 0.4, 0.7, 0.9, 0.97, 1.0}) {
      SCOPED_TRACE((replace ? "replacing, killed at " : "fresh, killed at ") + std::to_string(fraction));
      const fs::path save = dir_.path() / (replace ? "replaced" : "fresh");
      if (replace && !fs::exists(save)) fs::copy(reference, save, fs::copy_options::recursive);
      std::vector<std::string> args = command_.args(save, "1", kW8A8);
      if (replace) args.push_back("--force");
      const pid_t pid = spawn(args);
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds * fraction));
      ::kill(pid, SIGKILL);
      wait_for(pid);
      if (replace) {
        ASSERT_TRUE(fs::exists(save)) << "the previous output must survive a killed --force run";
      }
      if (fs::exists(save)) {
        expect_same_files(reference, save);
        const CommandResult inspect = run_moeslim("inspect " + shell_quoted(save));
        EXPECT_EQ(inspect.status, 0) << inspect.out;
      }
      // The next run (with --force, as the output may be complete already) cleans up and succeeds.
      run_to_completion(save, "1", kW8A8, "--force");
      EXPECT_TRUE(leftovers(save).empty()) << leftovers(save).front();
      expect_same_files(reference, save);
      if (!replace) fs::remove_all(save);
    }
  }
}

// A write failure part way (a 2 MiB file-size limit; the shards are larger) ends the run with an error naming
// the file, exit status 1, and nothing at or beside --save_path.
TEST_F(QuantFaults, AWriteFailureRemovesThePartialOutput) {
  const fs::path save = dir_.path() / "limited";
  const CommandResult r = run_shell("ulimit -f 2048; " + shell_quoted(moeslim_exe()) + " " +
                                    shell_line(command_.args(save, "1", kW8A8)));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(save.string() + ".moeslim-tmp-"), std::string::npos) << r.err;  // names the file
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(save));
  EXPECT_TRUE(leftovers(save).empty()) << leftovers(save).front();
}

// Ctrl-C (SIGINT) mid-run: exit status 130, the message says so, nothing is left.
TEST_F(QuantFaults, CtrlCStopsCleanly) {
  const fs::path reference = dir_.path() / "reference";
  const double seconds = run_to_completion(reference, "1", kW8A8);
  const fs::path save = dir_.path() / "interrupted";
  const pid_t pid = spawn(command_.args(save, "1", kW8A8));
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds * 0.5));
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_for(pid), 130);
  EXPECT_FALSE(fs::exists(save));
  EXPECT_TRUE(leftovers(save).empty()) << leftovers(save).front();
}

// Before any work, quant logs the peak memory it expects and checks the free space against its estimate of the
// output, which must cover what it then writes.
TEST_F(QuantFaults, EstimatesItsOutputAndPeakMemoryUpFront) {
  const fs::path save = dir_.path() / "estimated";
  const CommandResult r = run_moeslim(shell_line(command_.args(save, "1", kW8A8)));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("expected peak memory"), std::string::npos) << r.err;
  const json report = json::parse(read_whole_file(save / "quant_report.json"));
  std::uint64_t written = 0;
  for (const auto& e : fs::directory_iterator(save)) written += fs::file_size(e.path());
  EXPECT_GE(report.at("expected_output_bytes").get<std::uint64_t>(), written);
  EXPECT_GT(report.at("expected_peak_memory_bytes").get<std::uint64_t>(), 0u);
  EXPECT_GT(report.at("peak_rss_bytes").get<std::uint64_t>(), 0u);
}

// The same command twice, and with 1 and 2 threads: byte-identical files (the report compared without its
// timings and measured peak), for the W8A8 script's flow and the one-click W4A8 flow.
// Also across expert group sizes: the third run holds 3 of the tiny model's experts at a time.
TEST_F(QuantFaults, OutputIsByteIdenticalAcrossRunsThreadCountsAndExpertGroups) {
  for (const auto* flow : {&kW8A8, &kW4A8, &kRotGptq}) {
    SCOPED_TRACE(flow == &kW8A8 ? "w8a8" : flow == &kW4A8 ? "w4a8" : "w4a8 rot gptq");
    const fs::path a = dir_.path() / "a", b = dir_.path() / "b", c = dir_.path() / "c";
    run_to_completion(a, "1", *flow);
    run_to_completion(b, "1", *flow);
    run_to_completion(c, "2", *flow, "--expert_group 3");
    expect_same_files(a, b);
    expect_same_files(a, c);
    EXPECT_EQ(json::parse(read_whole_file(c / "quant_report.json"))["experts_per_group"], 3);
    for (const fs::path& p : {a, b, c}) fs::remove_all(p);
  }
}

}  // namespace
}  // namespace moeslim::testing
