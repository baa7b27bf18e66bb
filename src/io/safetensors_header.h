// The JSON header of a safetensors file: strict parsing and validation (reader side) and building the
// padded header bytes (writer side). Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON,
// then the data area; every tensor's data_offsets are relative to the start of the data area.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace moeslim::io {

// The reference implementation's limit on the header length.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  std::uint64_t begin = 0;  // byte offsets relative to the data area, half-open
  std::uint64_t end = 0;

  std::uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

// Parses and validates header bytes (trailing spaces allowed) against a data area of `data_size` bytes:
// valid UTF-8 and JSON, an object with unique keys, well-formed entries of supported dtypes whose byte
// ranges cover the data area exactly, without overlaps or gaps. Throws kFormat (kUnsupported for a known
// but unhandled dtype) naming `file` and, where there is one, the tensor.
SafetensorsHeader parse_safetensors_header(std::string_view header, std::uint64_t data_size, const std::string& file);

// Builds the header JSON for tensors whose offsets are already laid out, in the given order, compact, with
// `__metadata__` first when `metadata` is non-empty, padded with spaces to a multiple of 8 bytes so that the
// data area (at 8 + N) starts 8-byte aligned.
std::string build_safetensors_header(const std::vector<TensorInfo>& tensors,
                                     const std::map<std::string, std::string>& metadata);

// The 8-byte little-endian length prefix.
std::string encode_header_length(std::uint64_t n);

}  // namespace moeslim::io
