#include "formats/compressed_tensors/int4_words.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace moeslim::formats::compressed_tensors {
namespace {

constexpr std::int64_t kPerWord = 8;

std::int64_t words_for(std::int64_t n) { return (n + kPerWord - 1) / kPerWord; }

void require_2d(const Tensor& t, DType dtype, const char* what) {
  if (t.dtype() != dtype || t.rank() != 2) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " must be a 2-D " + std::string(dtype_name(dtype)) +
                                                 " tensor, got " + std::string(dtype_name(t.dtype())) + " " +
                                                 shape_to_string(t.shape()));
  }
}

// q + 8 as a nibble; kInvalidArgument naming (row, col) for a code outside [−8, 7].
std::uint32_t nibble(std::int8_t q, std::int64_t row, std::int64_t col) {
  if (q < -8 || q > 7) {
    throw Error(ErrorCode::kInvalidArgument, "int4 code " + std::to_string(q) + " at [" + std::to_string(row) +
                                                 ", " + std::to_string(col) + "] is outside [-8, 7]");
  }
  return static_cast<std::uint32_t>(q + 8);
}

std::int8_t code(std::uint32_t word, std::int64_t slot) {
  return static_cast<std::int8_t>(static_cast<int>((word >> (4 * slot)) & 0xFu) - 8);
}

std::int32_t as_i32(std::uint32_t w) { return static_cast<std::int32_t>(w); }  // two's complement (C++20)

// The unpacked length must fit the words, and the padding nibbles must be 0.
void check_padding(std::uint32_t word, std::int64_t used, const char* what, std::int64_t at) {
  for (std::int64_t slot = used; slot < kPerWord; ++slot) {
    if (((word >> (4 * slot)) & 0xFu) != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(what) + ": padding nibble " + std::to_string(slot) + " of word " +
                      std::to_string(at) + " is not 0");
    }
  }
}

// One layout for both tensors: `lines` runs of `length` int4 values, value k of line i at
// src[i·line_step + k·value_step], each run packed into words_for(length) words at out[i·word_line_step +
// j·word_step].
struct Walk {
  std::int64_t lines, length, line_step, value_step, word_line_step, word_step;
};

void pack(const std::int8_t* src, const Walk& w, std::int32_t* out, bool rows_are_lines) {
  for (std::int64_t i = 0; i < w.lines; ++i) {
    for (std::int64_t j = 0; j < words_for(w.length); ++j) {
      std::uint32_t word = 0;
      for (std::int64_t k = 0; k < kPerWord && j * kPerWord + k < w.length; ++k) {
        const std::int64_t at = j * kPerWord + k;
        word |= nibble(src[i * w.line_step + at * w.value_step], rows_are_lines ? i : at, rows_are_lines ? at : i)
                << (4 * k);
      }
      out[i * w.word_line_step + j * w.word_step] = as_i32(word);
    }
  }
}

void unpack(const std::int32_t* src, const Walk& w, std::int8_t* out, const char* what) {
  for (std::int64_t i = 0; i < w.lines; ++i) {
    for (std::int64_t j = 0; j < words_for(w.length); ++j) {
      const auto word = static_cast<std::uint32_t>(src[i * w.word_line_step + j * w.word_step]);
      const std::int64_t used = std::min(kPerWord, w.length - j * kPerWord);
      check_padding(word, used, what, i * w.word_line_step + j * w.word_step);
      for (std::int64_t k = 0; k < used; ++k) out[i * w.line_step + (j * kPerWord + k) * w.value_step] = code(word, k);
    }
  }
}

void require_words(std::int64_t words, std::int64_t n, const char* what) {
  if (n < 0 || words != words_for(n)) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": " + std::to_string(words) +
                                                 " words cannot hold " + std::to_string(n) + " int4 values (need " +
                                                 std::to_string(words_for(n)) + ")");
  }
}

}  // namespace

Tensor pack_int4_columns(const Tensor& codes) {
  require_2d(codes, DType::kI8, "int4 codes");
  const std::int64_t rows = codes.dim(0), cols = codes.dim(1), words = words_for(cols);
  Tensor out = Tensor::zeros(DType::kI32, {rows, words});
  pack(codes.data<std::int8_t>(), {rows, cols, cols, 1, words, 1}, out.mutable_data<std::int32_t>(), true);
  return out;
}

Tensor unpack_int4_columns(const Tensor& packed, std::int64_t cols) {
  require_2d(packed, DType::kI32, "packed int4 weight");
  const std::int64_t rows = packed.dim(0), words = packed.dim(1);
  require_words(words, cols, "packed int4 weight");
  Tensor out = Tensor::zeros(DType::kI8, {rows, cols});
  unpack(packed.data<std::int32_t>(), {rows, cols, cols, 1, words, 1}, out.mutable_data<std::int8_t>(),
         "packed int4 weight");
  return out;
}

Tensor pack_int4_rows_to_words(const Tensor& zero_points) {
  require_2d(zero_points, DType::kI8, "int4 zero points");
  const std::int64_t rows = zero_points.dim(0), groups = zero_points.dim(1);
  Tensor out = Tensor::zeros(DType::kI32, {words_for(rows), groups});
  // Each group's column is a line, its values `groups` apart; its words go down the output's column.
  pack(zero_points.data<std::int8_t>(), {groups, rows, 1, groups, 1, groups}, out.mutable_data<std::int32_t>(),
       false);
  return out;
}

Tensor unpack_int4_rows_from_words(const Tensor& packed, std::int64_t rows) {
  require_2d(packed, DType::kI32, "packed int4 zero points");
  const std::int64_t words = packed.dim(0), groups = packed.dim(1);
  require_words(words, rows, "packed int4 zero points");
  Tensor out = Tensor::zeros(DType::kI8, {rows, groups});
  unpack(packed.data<std::int32_t>(), {groups, rows, 1, groups, 1, groups}, out.mutable_data<std::int8_t>(),
         "packed int4 zero points");
  return out;
}

}  // namespace moeslim::formats::compressed_tensors
