// moeslim: post-training quantization of Qwen3-MoE checkpoints on the CPU.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"

namespace {

// libgomp reads OMP_WAIT_POLICY once, as it loads, before main() runs. Its default lets idle OpenMP threads
// spin between parallel regions. Every command runs on all usable CPUs by default; beside another busy
// process, spinning threads starve the working ones, while passive waiting costs nothing measurable on a
// machine the run has to itself (README, Performance: the measurements and their commands). So when the user
// has chosen no policy, the process starts itself again with OMP_WAIT_POLICY=passive; if that fails (no
// /proc) it goes on as it is.
void restart_with_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OMP_WAIT_POLICY");
}

}  // namespace

int main(int argc, char** argv) {
  restart_with_passive_omp_wait(argv);
  CLI::App app{
      "moeslim: quantize Qwen3-MoE models (Qwen3-30B-A3B, Qwen3-235B-A22B) on the CPU, one decoder layer at a\n"
      "time, into msModelSlim's W8A8 / W4A8 formats that MindIE and vLLM-Ascend load.\n"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");
  bool quiet = false;
  bool verbose = false;
  app.add_flag("-q,--quiet", quiet, "Only print errors and results");
  app.add_flag("-v,--verbose", verbose, "Print debugging detail");

  std::map<const CLI::App*, moeslim::cli::CommandRunner> runners;
  auto add = [&](moeslim::cli::CommandRunner (*registrar)(CLI::App&)) {
    const std::size_t before = app.get_subcommands({}).size();
    moeslim::cli::CommandRunner runner = registrar(app);
    runners[app.get_subcommands({}).at(before)] = std::move(runner);
  };
  add(moeslim::cli::register_tokenize);
  add(moeslim::cli::register_info);
  add(moeslim::cli::register_eval);
  add(moeslim::cli::register_synth);
  add(moeslim::cli::register_quant);
  add(moeslim::cli::register_inspect);
  add(moeslim::cli::register_recipes);
  add(moeslim::cli::register_report);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  moeslim::set_log_level(quiet ? moeslim::LogLevel::kWarn
                               : verbose ? moeslim::LogLevel::kDebug : moeslim::LogLevel::kInfo);
  moeslim::install_interrupt_handlers();
  // A file-size limit (ulimit -f) then shows as a failed write (EFBIG), which ends the run with an error that
  // names the file and removes the partial output, instead of killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    for (const auto& [sub, runner] : runners) {
      if (sub->parsed()) return runner();
    }
    return 2;
  } catch (const moeslim::Error& e) {
    std::fprintf(stderr, "moeslim: error (%s): %s\n", moeslim::error_code_name(e.code()), e.what());
    if (e.code() == moeslim::ErrorCode::kInterrupted) return 130;  // the shell's code for a SIGINT stop
    return e.code() == moeslim::ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "moeslim: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moeslim: internal error: %s\n", e.what());
    return 3;
  }
}
