// A read-only memory mapping of a whole file. Shared ownership: tensor views into a mapping hold a
// std::shared_ptr to it, so the file stays mapped for as long as any view lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace moeslim::io {

class MappedFile {
 public:
  // Maps `path` read-only. kIo (with the system's reason) if it cannot be opened, stat'ed or mapped.
  // An empty file gives a mapping of size 0 with data() == nullptr (mmap cannot map 0 bytes).
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Drops the pages covering [offset, offset + length) from this process (madvise MADV_DONTNEED). The range
  // is widened to whole pages: the mapping is read-only and file-backed, so a page shared with a neighbour
  // that is still in use is simply read back from the file on the next access. Clipped to the file;
  // a no-op for an empty range. Advisory: failures are ignored.
  void advise_dontneed(std::uint64_t offset, std::uint64_t length) const;
  // Asks the kernel to read [offset, offset + length) ahead (MADV_WILLNEED), e.g. the next layer's weights.
  void advise_willneed(std::uint64_t offset, std::uint64_t length) const;

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, std::uint64_t size);
  void advise(std::uint64_t offset, std::uint64_t length, int advice) const;

  std::filesystem::path path_;
  const std::byte* data_;
  std::uint64_t size_;
};

}  // namespace moeslim::io
