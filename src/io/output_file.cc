#include "io/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

namespace moeslim::io {

OutputFile::OutputFile(std::filesystem::path path) : path_(std::move(path)) {
  do {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) fail("cannot create", errno);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::fail(const char* what, int err) const {
  throw Error(ErrorCode::kIo, std::string(what) + ": " + std::strerror(err), path_.string());
}

void OutputFile::write(const void* data, std::uint64_t size) { write_at(end_, data, size); }

void OutputFile::write_at(std::uint64_t offset, const void* data, std::uint64_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux writes at most about 2 GiB per call; larger requests come back short and are continued.
    const ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    if (n == 0) fail("write failed", ENOSPC);
    p += n;
    size -= static_cast<std::uint64_t>(n);
    offset += static_cast<std::uint64_t>(n);
    end_ = std::max(end_, offset);
  }
}

void OutputFile::append_range_of(const OutputFile& source, std::uint64_t offset, std::uint64_t length) {
  auto in_offset = static_cast<off_t>(offset);
  std::uint64_t left = length;
  // copy_file_range keeps the bytes in the kernel (or shares extents on reflink file systems).
  while (left > 0) {
    auto out_offset = static_cast<off_t>(end_);
    const ssize_t n = ::copy_file_range(source.fd_, &in_offset, fd_, &out_offset, left, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) break;  // fall back below
      fail("copy failed", errno);
    }
    if (n == 0) {
      throw Error(ErrorCode::kIo, "unexpected end of file while copying from it", source.path_.string());
    }
    left -= static_cast<std::uint64_t>(n);
    end_ += static_cast<std::uint64_t>(n);
  }
  std::vector<char> buffer(left > 0 ? std::min<std::uint64_t>(left, 8u << 20) : 0);
  while (left > 0) {
    const ssize_t n = ::pread(source.fd_, buffer.data(), std::min<std::uint64_t>(left, buffer.size()), in_offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kIo, std::string("read failed: ") + std::strerror(errno), source.path_.string());
    }
    if (n == 0) {
      throw Error(ErrorCode::kIo, "unexpected end of file while copying from it", source.path_.string());
    }
    write(buffer.data(), static_cast<std::uint64_t>(n));
    in_offset += n;
    left -= static_cast<std::uint64_t>(n);
  }
}

void OutputFile::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  // close() may report a deferred write error; EINTR after close must not be retried on Linux.
  if (::close(fd) != 0 && errno != EINTR) fail("close failed", errno);
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  OutputFile out(path);
  out.write(text);
  out.close();
}

void write_text_file_atomically(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::path temp = path;
  temp += ".tmp-" + std::to_string(::getpid());
  try {
    write_text_file(temp, text);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw Error(ErrorCode::kIo, "cannot rename " + temp.string() + " to it: " + ec.message(), path.string());
  }
}

}  // namespace moeslim::io
