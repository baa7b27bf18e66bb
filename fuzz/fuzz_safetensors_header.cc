// Fuzzes the safetensors header parser. Input: 8 bytes little-endian data-area size, then the header JSON.
// A header that parses must describe tensors that tile [0, data_size) exactly, each with a byte length that
// matches its shape and dtype.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t data_size = 0;
  std::memcpy(&data_size, data, 8);
  data_size %= (std::uint64_t{1} << 44);  // keep the sums below overflow, like any real file size
  const std::string_view header(reinterpret_cast<const char*>(data) + 8, size - 8);
  try {
    const moeslim::io::SafetensorsHeader h = moeslim::io::parse_safetensors_header(header, data_size, "fuzz.safetensors");
    std::uint64_t at = 0;
    for (const moeslim::io::TensorInfo& t : h.tensors) {
      if (t.begin != at || t.end < t.begin) std::abort();  // sorted, no gaps, no overlaps
      if (t.nbytes() != static_cast<std::uint64_t>(moeslim::shape_numel(t.shape)) * moeslim::dtype_size(t.dtype)) std::abort();
      at = t.end;
    }
    if (at != data_size) std::abort();
  } catch (const moeslim::Error&) {
  }
  return 0;
}
