#include "io/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace moeslim::io {
namespace {

template <typename Json>
Json parse_json_file(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kFormat, "invalid JSON: " + describe_json_parse_error(text, e), path.string());
  }
}

}  // namespace

std::string describe_json_parse_error(std::string_view text, const nlohmann::json::exception& error) {
  // Not only parse_error: the parser reports a number that overflows a double as out_of_range.406.
  const auto* parse_error = dynamic_cast<const nlohmann::json::parse_error*>(&error);
  if (parse_error == nullptr) {
    const std::string what = error.what();  // "[json.exception.out_of_range.406] number overflow parsing '1e400'"
    const auto close = what.find("] ");
    return close == std::string::npos ? what : what.substr(close + 2);
  }
  const nlohmann::json::parse_error& e = *parse_error;
  // nlohmann says "[json.exception.parse_error.101] parse error at line 4, column 0: <reason>", counting the
  // character after the one that failed (for "tru\n", the start of the next line). Report the line and
  // column (1-based) of the last character read instead, and keep the reason.
  std::string reason = e.what();
  if (const auto pos = reason.find("column "); pos != std::string::npos) {
    if (const auto colon = reason.find(": ", pos); colon != std::string::npos) reason = reason.substr(colon + 2);
  }
  if (text.empty()) return reason;
  const std::size_t at = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size() - 1);
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + reason;
}

std::string read_text_file(const std::filesystem::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    throw Error(ErrorCode::kIo, std::string("cannot open for reading: ") + std::strerror(errno), path.string());
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;  // e.g. EISDIR for a directory
      ::close(fd);
      throw Error(ErrorCode::kIo, std::string("read failed: ") + std::strerror(err), path.string());
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

nlohmann::json read_json_file(const std::filesystem::path& path) { return parse_json_file<nlohmann::json>(path); }

nlohmann::ordered_json read_ordered_json_file(const std::filesystem::path& path) {
  return parse_json_file<nlohmann::ordered_json>(path);
}

}  // namespace moeslim::io
