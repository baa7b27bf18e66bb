// The orthogonal matrices of msModelSlim's `--rot` (docs/msmodelslim-algorithms.md §5.2);
// weight_rotation.h applies them to weight tensors.
//
// Both rotations are block-diagonal with one shared dense block:
//   R1 (hidden size H): H/32 blocks of Hb(s1) = diag(s1)·H32/√32, except blocks 0 and 1 (channels 0–63),
//                       which are identity;
//   R2 (head_dim d):    one d×d block B·P·B with B = block_diag(Hb(s2) × d/32) and P the cyclic column shift
//                       by 16 (x·P = roll(x, +16)), repeated once per attention head when a projection spans
//                       several heads.
// A BlockRotation describes such a matrix for any size that is a multiple of its block, so applying R1 to a
// row costs O(H·32), never an H×H matrix (the Qwen3-235B embedding alone is 151936×4096).
// The blocks are built in float64 and stored float32, as msModelSlim does.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moeslim::quant {

inline constexpr std::int64_t kHadamardBlockSize = 32;
inline constexpr std::int64_t kHadamardShift = 16;  // P's column shift in block_hadamard_shifted

using HadamardSigns = std::array<std::int8_t, kHadamardBlockSize>;

// §5.2's random signs, literally: s1 = the first 32 draws of torch.randint(0, 2) · 2 − 1 after
// torch.manual_seed(42) (R1's block), s2 = the next 32 (R2's block). Hard-coded rather than re-deriving
// PyTorch's generator.
extern const HadamardSigns kR1Signs;
extern const HadamardSigns kR2Signs;

// The Sylvester (natural-order) Walsh–Hadamard matrix of order n (a power of two), entries ±1, row-major:
// H_1 = [1], H_2n = [[H_n, H_n], [H_n, −H_n]].
std::vector<double> sylvester_hadamard(std::int64_t n);

// Hb(s) = diag(s) · H32 / √32, computed in float64 and stored float32 (32×32, row-major).
std::vector<float> signed_hadamard_block(const HadamardSigns& signs);

// B·P·B for size n (a multiple of 32): B = block_diag(hb × n/32), P[i][j] = 1 iff i = (j − 16) mod n, i.e.
// x·P = roll(x, +16) (element i moves to i + 16, torch.roll semantics). Products in float64 from the float32
// blocks, stored float32 (n×n, row-major).
std::vector<float> shifted_block_hadamard(std::int64_t n, const std::vector<float>& hb);

// An orthogonal matrix of size n (any multiple of `block`): block_diag of the shared block×block `matrix`,
// except that the blocks listed in `identity_blocks` are identity.
struct BlockRotation {
  std::int64_t block = 0;
  std::vector<float> matrix;  // block×block, row-major
  std::vector<std::int64_t> identity_blocks;

  bool is_identity_block(std::int64_t b) const;
  // The dense n×n matrix as F32 (for tests and small sizes). kInvalidArgument if n is not a multiple of block.
  Tensor dense(std::int64_t n) const;
};

// R1 for hidden size H: Hb(s1) blocks, blocks 0 and 1 identity. kUnsupported unless H is a multiple of 32
// and at least 64.
BlockRotation make_r1(std::int64_t hidden_size);
// R2 for one head: a single head_dim block B·P·B built from Hb(s2). msModelSlim's Qwen3 models all have
// head_dim 128; create_rot's block_hadamard_shifted mode is the same construction for any multiple of 32, so
// that is what is accepted (kUnsupported otherwise).
BlockRotation make_r2(std::int64_t head_dim);

}  // namespace moeslim::quant
