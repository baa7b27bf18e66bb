// A file being written through a POSIX descriptor, with every failure (ENOSPC, EFBIG, EIO, ...) turned into
// kIo naming the file. Short writes and EINTR are retried. Used by the safetensors writers, whose outputs are
// tens of gigabytes: a silently truncated shard must never look like success. Appends go after the furthest
// byte written so far, so that bytes placed ahead with write_at() are never overwritten by one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace moeslim::io {

class OutputFile {
 public:
  // Creates or truncates `path` (mode 0644), open for reading and writing.
  explicit OutputFile(std::filesystem::path path);
  ~OutputFile();  // closes without reporting errors; call close() to have them reported
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends at end().
  void write(const void* data, std::uint64_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // Writes at `offset` (which may lie beyond end(): the gap reads as zeros until written).
  void write_at(std::uint64_t offset, const void* data, std::uint64_t size);
  // Appends `length` bytes of `source` starting at `offset` (copy_file_range, falling back to read/write).
  void append_range_of(const OutputFile& source, std::uint64_t offset, std::uint64_t length);
  // Flushes and closes; a failure here (delayed EIO, NFS quota) throws too.
  void close();

  const std::filesystem::path& path() const { return path_; }
  // One past the furthest byte written.
  std::uint64_t end() const { return end_; }

 private:
  [[noreturn]] void fail(const char* what, int err) const;

  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t end_ = 0;
};

// Writes `text` to `path` through an OutputFile (create/truncate, checked close).
void write_text_file(const std::filesystem::path& path, std::string_view text);
// The same, atomically: written to "<path>.tmp-<pid>" beside it, then renamed over `path`, so that a reader
// (or a failure half-way) never sees a partial file. The temporary file is removed when the write fails.
void write_text_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace moeslim::io
