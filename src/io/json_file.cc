#include "io/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace moeslim::io {
namespace {

// nlohmann reports "[json.exception.parse_error.101] parse error at line 3, column 7: ..."; the id prefix
// means nothing to a user.
std::string describe(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  if (what.rfind("[json.exception", 0) == 0) {
    if (const auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
  }
  return "invalid JSON: " + what;
}

template <typename Json>
Json parse_json_file(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorCode::kFormat, describe(e), path.string());
  }
}

}  // namespace

std::string read_text_file(const std::filesystem::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw Error(ErrorCode::kIo, std::string("cannot open for reading: ") + std::strerror(errno), path.string());
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
