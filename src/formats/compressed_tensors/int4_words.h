// compressed-tensors' `pack-quantized` int4 layout (docs/compressed-tensors.md §2.3), as vLLM's WNA16 kernels
// read it:
//   weight_packed I32 [out, ceil(in/8)]: code q of column c (in [−8, 7]) is stored unsigned as q + 8, in word
//     c / 8 of its row, bits 4·(c % 8) … 4·(c % 8) + 3 (column 0 in the lowest nibble); a short last word is
//     padded with 0 nibbles (raw, after the +8), which weight_shape cuts off again;
//   weight_zero_point I32 [ceil(out/8), groups] (asymmetric weights only): zero point z of row r (in [−8, 7])
//     stored as z + 8, packed the other way, along the output rows: word r / 8 of its group's column, nibble
//     r % 8.
// msModelSlim packs int4 differently (two codes per byte along the output rows: model::pack_int4_rows).
#pragma once

#include "core/tensor.h"

namespace moeslim::formats::compressed_tensors {

// I8 codes [rows, cols] in [−8, 7] → I32 [rows, ceil(cols/8)], eight columns per word. kInvalidArgument for
// another dtype, a shape that is not 2-D, or a code out of range (naming its row and column).
Tensor pack_int4_columns(const Tensor& codes);
// The inverse: I32 [rows, words] → I8 [rows, cols], cols ≤ 8·words (the padding must be 0 nibbles).
Tensor unpack_int4_columns(const Tensor& packed, std::int64_t cols);

// I8 zero points [rows, groups] in [−8, 7] → I32 [ceil(rows/8), groups], eight rows per word.
Tensor pack_int4_rows_to_words(const Tensor& zero_points);
// The inverse: I32 [words, groups] → I8 [rows, groups], rows ≤ 8·words.
Tensor unpack_int4_rows_from_words(const Tensor& packed, std::int64_t rows);

}  // namespace moeslim::formats::compressed_tensors
