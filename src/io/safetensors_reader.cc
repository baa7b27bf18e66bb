#include "io/safetensors_reader.h"

#include "core/error.h"

namespace moeslim::io {

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.mapping_ = MappedFile::open(path);
  const std::string file = path.string();
  const std::uint64_t size = f.mapping_->size();
  if (size < 8) {
    throw Error(ErrorCode::kFormat,
                "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length prefix", file);
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(f.mapping_->data()[i]);
  if (n == 0) throw Error(ErrorCode::kFormat, "header length is 0", file);
  if (n > kMaxSafetensorsHeaderBytes) {
    throw Error(ErrorCode::kFormat,
                "header length " + std::to_string(n) + " exceeds the limit of " +
                    std::to_string(kMaxSafetensorsHeaderBytes) + " bytes",
                file);
  }
  if (n > size - 8) {
    throw Error(
        ErrorCode::kFormat,
        "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)",
        file);
  }
  f.data_offset_ = 8 + n;
  const std::string_view header(reinterpret_cast<const char*>(f.mapping_->data()) + 8, n);
  SafetensorsHeader parsed = parse_safetensors_header(header, size - f.data_offset_, file);
  f.tensors_ = std::move(parsed.tensors);
  f.metadata_ = std::move(parsed.metadata);
  for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  return f;
}

bool SafetensorsFile::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end())
    throw Error(ErrorCode::kNotFound, "no such tensor in the file", path_.string(), std::string(name));
  return tensors_[it->second];
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo& t = info(name);
  return Tensor::view(t.dtype, t.shape, mapping_->data() + data_offset_ + t.begin, mapping_);
}

void SafetensorsFile::release(std::string_view name) const {
  const TensorInfo& t = info(name);
  mapping_->advise_dontneed(data_offset_ + t.begin, t.nbytes());
}

void SafetensorsFile::prefetch(std::string_view name) const {
  const TensorInfo& t = info(name);
  mapping_->advise_willneed(data_offset_ + t.begin, t.nbytes());
}

std::uint64_t SafetensorsFile::data_bytes() const { return mapping_->size() - data_offset_; }

}  // namespace moeslim::io
