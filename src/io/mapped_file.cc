#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace moeslim::io {
namespace {

// Closes a descriptor on scope exit; the mapping does not need it once mmap has returned.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(std::filesystem::path path, const std::byte* data, std::uint64_t size)
    : path_(std::move(path)), data_(data), size_(size) {}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    throw Error(ErrorCode::kIo, std::string("cannot open for reading: ") + std::strerror(errno), path.string());
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::kIo, std::string("cannot stat: ") + std::strerror(errno), path.string());
  }
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kIo, "not a regular file", path.string());
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) return std::shared_ptr<const MappedFile>(new MappedFile(path, nullptr, 0));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::kIo, std::string("cannot map into memory: ") + std::strerror(errno), path.string());
  }
  return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<const std::byte*>(p), size));
}

void MappedFile::advise(std::uint64_t offset, std::uint64_t length, int advice) const {
  if (data_ == nullptr || offset >= size_ || length == 0) return;
  const std::uint64_t end = length > size_ - offset ? size_ : offset + length;
  static const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t first = offset / page * page;
  const std::uint64_t last = (end + page - 1) / page * page;  // past the file end: still inside the mapping's last page
  ::madvise(const_cast<std::byte*>(data_) + first, last - first, advice);
}

void MappedFile::advise_dontneed(std::uint64_t offset, std::uint64_t length) const {
  advise(offset, length, MADV_DONTNEED);
}

void MappedFile::advise_willneed(std::uint64_t offset, std::uint64_t length) const {
  advise(offset, length, MADV_WILLNEED);
}

}  // namespace moeslim::io
