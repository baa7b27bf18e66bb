#include "quant/hadamard.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace moeslim::quant {

// docs/msmodelslim-algorithms.md §5.2, verbatim:
//   s1 = [−,+,−,−,−,+,−,−,−,+,−,−,−,−,+,−,+,+,+,−,+,−,+,+,+,+,+,+,+,+,−,−],
//   s2 = [+,+,+,−,+,−,−,−,−,−,+,+,+,+,+,−,+,+,−,+,−,+,−,+,+,−,−,−,−,−,−,−].
const HadamardSigns kR1Signs = {-1, 1,  -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1, -1, 1,  -1,
                                1,  1,  1,  -1, 1,  -1, 1, 1,  1,  1, 1,  1,  1,  1,  -1, -1};
const HadamardSigns kR2Signs = {1, 1, 1,  -1, 1, -1, -1, -1, -1, -1, 1,  1,  1,  1,  1,  -1,
                                1, 1, -1, 1,  -1, 1, -1, 1,  1,  -1, -1, -1, -1, -1, -1, -1};

std::vector<double> sylvester_hadamard(std::int64_t n) {
  if (n < 1 || (n & (n - 1)) != 0) {
    throw Error(ErrorCode::kInvalidArgument, "Sylvester Hadamard order must be a power of two, got " +
                                                 std::to_string(n));
  }
  std::vector<double> h = {1.0};
  for (std::int64_t m = 1; m < n; m *= 2) {  // h is m×m; build [[h, h], [h, −h]]
    std::vector<double> next(static_cast<std::size_t>(4 * m * m));
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < m; ++j) {
        const double v = h[static_cast<std::size_t>(i * m + j)];
        next[static_cast<std::size_t>(i * 2 * m + j)] = v;
        next[static_cast<std::size_t>(i * 2 * m + j + m)] = v;
        next[static_cast<std::size_t>((i + m) * 2 * m + j)] = v;
        next[static_cast<std::size_t>((i + m) * 2 * m + j + m)] = -v;
      }
    }
    h = std::move(next);
  }
  return h;
}

std::vector<float> signed_hadamard_block(const HadamardSigns& signs) {
  constexpr std::int64_t k = kHadamardBlockSize;
  const std::vector<double> h = sylvester_hadamard(k);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(k));
  std::vector<float> hb(static_cast<std::size_t>(k * k));
  for (std::int64_t i = 0; i < k; ++i) {
    for (std::int64_t j = 0; j < k; ++j) {
      const auto e = static_cast<std::size_t>(i * k + j);
      hb[e] = static_cast<float>(signs[static_cast<std::size_t>(i)] * h[e] * inv_sqrt);
    }
  }
  return hb;
}

std::vector<float> shifted_block_hadamard(std::int64_t n, const std::vector<float>& hb) {
  constexpr std::int64_t k = kHadamardBlockSize;
  if (n < k || n % k != 0 || hb.size() != static_cast<std::size_t>(k * k)) {
    throw Error(ErrorCode::kInvalidArgument, "shifted block Hadamard needs a size that is a multiple of " +
                                                 std::to_string(k) + " and a " + std::to_string(k) + "×" +
                                                 std::to_string(k) + " block, got size " + std::to_string(n));
  }
  // B[i][m] for i, m in the same 32-block; zero elsewhere.
  auto b = [&](std::int64_t i, std::int64_t m) -> double {
    return i / k == m / k ? hb[static_cast<std::size_t>((i % k) * k + m % k)] : 0.0;
  };
  // (B·P·B)[i][j] = Σ_m B[i][m]·(P·B)[m][j], and (P·B)[m][j] = B[(m + 16) mod n][j] since P[m][q] = 1 iff
  // q = (m + 16) mod n. Only the 32 m in i's block contribute.
  std::vector<float> r(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t first = i / k * k;
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t m = first; m < first + k; ++m) acc += b(i, m) * b((m + kHadamardShift) % n, j);
      r[static_cast<std::size_t>(i * n + j)] = static_cast<float>(acc);
    }
  }
  return r;
}

bool BlockRotation::is_identity_block(std::int64_t b) const {
  return std::find(identity_blocks.begin(), identity_blocks.end(), b) != identity_blocks.end();
}

Tensor BlockRotation::dense(std::int64_t n) const {
  if (block <= 0 || n % block != 0) {
    throw Error(ErrorCode::kInvalidArgument, "rotation of block " + std::to_string(block) + " has no size " +
                                                 std::to_string(n));
  }
  Tensor out = Tensor::zeros(DType::kF32, {n, n});
  float* d = out.mutable_data<float>();
  for (std::int64_t b = 0; b < n / block; ++b) {
    for (std::int64_t i = 0; i < block; ++i) {
      for (std::int64_t j = 0; j < block; ++j) {
        const float v = is_identity_block(b) ? (i == j ? 1.0f : 0.0f)
                                             : matrix[static_cast<std::size_t>(i * block + j)];
        d[(b * block + i) * n + b * block + j] = v;
      }
    }
  }
  return out;
}

BlockRotation make_r1(std::int64_t hidden_size) {
  if (hidden_size < 2 * kHadamardBlockSize || hidden_size % kHadamardBlockSize != 0) {
    throw Error(ErrorCode::kUnsupported,
                "the --rot rotation R1 needs a hidden size that is a multiple of 32 and at least 64 (its first "
                "two 32-blocks stay identity), got " + std::to_string(hidden_size),
                "", "hidden_size");
  }
  // eye_step = [0, 1]: channels 0–63 are not rotated.
  return BlockRotation{kHadamardBlockSize, signed_hadamard_block(kR1Signs), {0, 1}};
}

BlockRotation make_r2(std::int64_t head_dim) {
  if (head_dim < kHadamardBlockSize || head_dim % kHadamardBlockSize != 0) {
    throw Error(ErrorCode::kUnsupported,
                "the --rot rotation R2 (block_hadamard_shifted) needs a head_dim that is a multiple of 32, got " +
                    std::to_string(head_dim),
                "", "head_dim");
  }
  return BlockRotation{head_dim, shifted_block_hadamard(head_dim, signed_hadamard_block(kR2Signs)), {}};
}

}  // namespace moeslim::quant
