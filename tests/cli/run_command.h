// Runs a shell command and captures its exit status, stdout and stderr (for CLI tests).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/test_paths.h"

namespace moeslim::testing {

struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

inline std::string read_whole_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `p` in single quotes, for a shell command line (test paths hold no single quote).
inline std::string shell_quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// Runs a shell command line; its last command's stdout and stderr are captured.
inline CommandResult run_shell(const std::string& command_line) {
  static int counter = 0;
  const auto dir = binary_dir() / "test_tmp";
  std::filesystem::create_directories(dir);
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const auto out = dir / ("out_" + tag);
  const auto err = dir / ("err_" + tag);
  const std::string cmd = command_line + " >" + out.string() + " 2>" + err.string();
  const int raw = std::system(cmd.c_str());
  CommandResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_whole_file(out);
  r.err = read_whole_file(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// `args` is appended to the moeslim executable's path; it must be shell-quoted by the caller.
inline CommandResult run_moeslim(const std::string& args) { return run_shell(moeslim_exe().string() + " " + args); }

}  // namespace moeslim::testing
