// Reading safetensors files: the header is validated strictly when the file is opened, and tensors are
// zero-copy views into a read-only memory mapping (pages are read from disk only when touched).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"
#include "io/safetensors_header.h"

namespace moeslim::io {

class SafetensorsFile {
 public:
  // Maps and validates the file (see parse_safetensors_header for the rules). kIo if it cannot be opened or
  // mapped, kFormat/kUnsupported naming the file and the offending tensor.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by data offset
  bool contains(std::string_view name) const;
  // kNotFound naming the file and the tensor if absent.
  const TensorInfo& info(std::string_view name) const;
  // A read-only view; it keeps the mapping alive even after this object is gone. Data is not necessarily
  // aligned to the element size (the format does not guarantee it).
  Tensor tensor(std::string_view name) const;
  // Drops the tensor's pages from memory (a later access reads them again from disk).
  void release(std::string_view name) const;
  // Prefetches the tensor's pages.
  void prefetch(std::string_view name) const;

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }
  std::uint64_t data_offset() const { return data_offset_; }  // file offset of the data area: 8 + N
  std::uint64_t data_bytes() const;                           // size of the data area

 private:
  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> mapping_;
  std::uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

}  // namespace moeslim::io
