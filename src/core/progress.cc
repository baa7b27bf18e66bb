#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/core.h>

#include "core/log.h"

namespace moeslim {

Progress::Progress(std::string label, std::uint64_t total, std::string unit, double interval_seconds)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      interval_(interval_seconds),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (!finished_ && printed_ && tty_) std::fputc('\n', stderr);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

void Progress::advance(std::uint64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() >= interval_) {
    last_print_ = now;
    print(false);
  }
}

void Progress::set_detail(std::string detail) { detail_ = std::move(detail); }

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (printed_) print(true);
}

void Progress::print(bool final_line) {
  if (log_level() < LogLevel::kInfo) return;
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string line = label_ + ": ";
  if (total_ > 0) {
    line += fmt::format("{}/{} {} ({:.0f}%)", done_, total_, unit_, 100.0 * static_cast<double>(done_) / total_);
  } else {
    line += fmt::format("{} {}", done_, unit_);
  }
  line += fmt::format(", {:.1f} {}/s", rate, unit_);
  if (final_line) {
    line += ", took " + format_duration(elapsed);
  } else if (total_ > 0 && rate > 0) {
    line += ", ETA " + format_duration(static_cast<double>(total_ - std::min(done_, total_)) / rate);
  }
  if (!detail_.empty()) line += " [" + detail_ + "]";
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
  } else {
    log_line(LogLevel::kInfo, line);
  }
  printed_ = true;
}

}  // namespace moeslim
