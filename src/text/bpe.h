// Byte-level BPE over vocabulary ids. A piece's bytes start as one symbol each (the vocab id of the byte's
// GPT-2 character); then the adjacent pair with the lowest merge rank is merged, the leftmost on ties, until
// no adjacent pair has a merge. This is Hugging Face tokenizers' `Word::merge_all` (dropout off), with the
// same priority queue keyed by (rank, position), a doubly linked list of live symbols and lazy invalidation
// of stale queue entries, so a piece of n bytes costs O(n log n) — a 100k-letter word is one piece.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moeslim::text {

class BpeModel {
 public:
  // byte_ids[b] is the vocab id of the single-byte symbol for byte b.
  explicit BpeModel(const std::array<std::int32_t, 256>& byte_ids) : byte_ids_(byte_ids) {}

  // Registers "left right -> merged" with priority `rank` (lower merges first). A pair registered twice
  // keeps the later rank, as tokenizers' HashMap collect does.
  void add_merge(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged);
  std::size_t merge_count() const { return merges_.size(); }

  // Appends the ids of one piece (raw bytes, not yet byte-level mapped) to `out`.
  void encode_piece(std::string_view bytes, std::vector<std::int32_t>& out) const;

 private:
  struct MergeResult {
    std::int32_t rank;
    std::int32_t merged;
  };
  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  const MergeResult* find_merge(std::int32_t left, std::int32_t right) const;

  std::array<std::int32_t, 256> byte_ids_;
  std::unordered_map<std::uint64_t, MergeResult> merges_;
};

}  // namespace moeslim::text
