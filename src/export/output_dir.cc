#include "export/output_dir.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace moeslim::exporter {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTempInfix = ".moeslim-tmp-";
constexpr const char* kAsideInfix = ".moeslim-old-";

// Absolute, with symlinks of the existing part resolved, "." and ".." folded and no trailing separator.
fs::path resolved(const fs::path& p) {
  const fs::path absolute = fs::absolute(p);
  std::error_code ec;
  fs::path r = fs::weakly_canonical(absolute, ec);
  if (ec) r = absolute.lexically_normal();
  if (!r.has_filename() && r.has_parent_path()) r = r.parent_path();
  return r;
}

// True when `inner` is `outer` or lies below it (component-wise, so /a/bc is not inside /a/b).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool is_non_empty_directory(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && !fs::is_empty(p, ec);
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// The pid in "<save><infix><pid>" when `name` has that form and the process is gone (left by a killed run).
std::optional<pid_t> dead_owner(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string pid_text = name.substr(prefix.size());
  if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) return std::nullopt;
  const auto pid = static_cast<pid_t>(std::stol(pid_text));
  if (pid <= 0 || pid == ::getpid() || process_alive(pid)) return std::nullopt;
  return pid;
}

// Cleans up after killed runs: removes "<save>.moeslim-tmp-<pid>" siblings (incomplete outputs), and deals
// with "<save>.moeslim-old-<pid>" (a previous complete output moved aside by a --force commit): put back if
// the run died between commit()'s two renames, leaving no <save>; removed otherwise.
void clean_up_after_killed_runs(const fs::path& save) {
  const std::string temp_prefix = save.filename().string() + kTempInfix;
  const std::string aside_prefix = save.filename().string() + kAsideInfix;
  std::error_code ec;
  std::vector<fs::path> temporaries, asides;
  for (fs::directory_iterator it(save.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (dead_owner(name, temp_prefix)) temporaries.push_back(it->path());
    if (dead_owner(name, aside_prefix)) asides.push_back(it->path());
  }
  for (const fs::path& p : temporaries) {
    log_info("removing the incomplete output {} of a run that was killed", p.string());
    std::error_code remove_ec;
    fs::remove_all(p, remove_ec);
    if (remove_ec) log_warn("cannot remove {}: {}", p.string(), remove_ec.message());
  }
  for (const fs::path& p : asides) {
    std::error_code move_ec;
    if (!fs::exists(save, move_ec)) {
      log_info("restoring {} from {}: a run was killed while replacing it", save.string(), p.string());
      fs::rename(p, save, move_ec);
    } else {
      log_info("removing {}, the previous output a killed run had replaced", p.string());
      fs::remove_all(p, move_ec);
    }
    if (move_ec) log_warn("cannot clean up {}: {}", p.string(), move_ec.message());
  }
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot rename " + from.string() + " to it: " + ec.message(), to.string());
}

}  // namespace

OutputDir::OutputDir(const fs::path& model_path, const fs::path& save_path, bool force)
    : save_(resolved(save_path)), force_(force) {
  const fs::path model = resolved(model_path);
  if (is_within(save_, model) || is_within(model, save_)) {
    const char* relation = save_ == model ? "is the same directory as"
                           : is_within(save_, model) ? "lies inside"
                                                     : "contains";
    throw Error(ErrorCode::kInvalidArgument,
                "--save_path " + save_.string() + " " + relation + " --model_path " + model.string() +
                    "; write the output to a separate directory",
                save_.string(), "save_path");
  }
  clean_up_after_killed_runs(save_);  // first: it may put a previous output back at save_
  std::error_code ec;
  if (fs::exists(save_, ec) && !fs::is_directory(save_, ec)) {
    throw Error(ErrorCode::kInvalidArgument, "--save_path exists and is not a directory", save_.string(),
                "save_path");
  }
  if (!force_ && is_non_empty_directory(save_)) {
    throw Error(ErrorCode::kInvalidArgument, "--save_path is not empty; pass --force to replace it", save_.string(),
                "save_path");
  }
  fs::create_directories(save_.parent_path(), ec);
  if (ec) {
    throw Error(ErrorCode::kIo, "cannot create the directory that is to hold --save_path " + save_.string() + ": " +
                                    ec.message(),
                save_.parent_path().string(), "save_path");
  }

  temp_ = save_;
  temp_ += kTempInfix + std::to_string(::getpid());
  if (!fs::create_directory(temp_, ec)) {
    throw Error(ErrorCode::kIo,
                ec ? "cannot create the temporary output directory: " + ec.message()
                   : std::string("the temporary output directory already exists (another output to the same "
                                 "--save_path in progress in this process?)"),
                temp_.string());
  }
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
  if (ec) log_warn("cannot remove the temporary output {}: {}", temp_.string(), ec.message());
}

void OutputDir::commit() {
  if (committed_) throw Error(ErrorCode::kInvalidArgument, "output committed twice", save_.string());
  std::error_code ec;
  if (!fs::exists(save_, ec)) {
    rename_or_throw(temp_, save_);
    committed_ = true;
    return;
  }
  if (!force_ && is_non_empty_directory(save_)) {
    throw Error(ErrorCode::kInvalidArgument, "--save_path is no longer empty; pass --force to replace it",
                save_.string(), "save_path");
  }
  fs::path aside = save_;
  aside += kAsideInfix + std::to_string(::getpid());
  fs::remove_all(aside, ec);
  rename_or_throw(save_, aside);
  try {
    rename_or_throw(temp_, save_);
  } catch (...) {
    std::error_code back_ec;
    fs::rename(aside, save_, back_ec);  // put the previous output back where it was
    throw;
  }
  committed_ = true;
  fs::remove_all(aside, ec);
  if (ec) log_warn("the new output is in place but the old one could not be deleted from {}: {}", aside.string(),
                   ec.message());
}

}  // namespace moeslim::exporter
