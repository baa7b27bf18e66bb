#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace moeslim {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_line(LogLevel level, std::string_view message) {
  const char* tag = level == LogLevel::kWarn ? "warning: " : level == LogLevel::kDebug ? "debug: " : "";
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s%.*s\n", tag, static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

}  // namespace moeslim
