// Helpers for the io tests: hand-made safetensors bytes (for malformed files) and error assertions.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/tensor.h"

namespace moeslim::io::testing {

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and `data_bytes` bytes of data (0, 1, 2, ...). The length prefix is
// the header's size unless `declared_length` overrides it.
inline void write_raw_safetensors(const std::filesystem::path& path, std::string_view header, std::size_t data_bytes,
                                  std::int64_t declared_length = -1) {
  std::string bytes = le64(declared_length < 0 ? header.size() : static_cast<std::uint64_t>(declared_length));
  bytes += header;
  for (std::size_t i = 0; i < data_bytes; ++i) bytes += static_cast<char>(i & 0xff);
  write_bytes(path, bytes);
}

// A tensor whose bytes are a pattern derived from `seed`, so every tensor's data is distinguishable.
inline Tensor patterned(DType dtype, Shape shape, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  std::byte* p = t.mutable_bytes();
  for (std::size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<std::byte>((i * 31 + seed * 17) & 0xff);
  return t;
}

// Runs `f`, which must throw moeslim::Error with this code, file, field and a detail containing `substring`.
template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& file, const std::string& field,
                  std::string_view substring) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one containing '" << substring << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.file(), file) << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(e.detail().find(substring), std::string::npos) << "'" << substring << "' not in: " << e.what();
  }
}

}  // namespace moeslim::io::testing
