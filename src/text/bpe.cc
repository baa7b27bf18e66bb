#include "text/bpe.h"

#include <queue>

namespace moeslim::text {
namespace {

struct Symbol {
  std::int32_t id;
  std::int32_t prev;  // index of the previous live symbol, -1 at the start
  std::int32_t next;  // index of the next live symbol, -1 at the end
  bool alive;
};

// A candidate merge of the symbol at `pos` with its right neighbour. It may go stale when either symbol is
// merged away first; that is detected when the entry is popped.
struct Candidate {
  std::int32_t rank;
  std::int32_t pos;
  std::int32_t merged;
};

// std::priority_queue is a max-heap, so "greater" puts the lowest (rank, pos) on top: lowest rank first,
// leftmost on ties (positions of live symbols keep their left-to-right order).
struct LaterCandidate {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

}  // namespace

void BpeModel::add_merge(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged) {
  merges_[pair_key(left, right)] = MergeResult{rank, merged};
}

const BpeModel::MergeResult* BpeModel::find_merge(std::int32_t left, std::int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<std::int32_t>& out) const {
  const auto n = static_cast<std::int32_t>(bytes.size());
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_ids_[static_cast<std::uint8_t>(bytes[0])]);
    return;
  }
  std::vector<Symbol> symbols(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids_[static_cast<std::uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  }

  std::vector<Candidate> storage;
  storage.reserve(static_cast<std::size_t>(n));
  std::priority_queue<Candidate, std::vector<Candidate>, LaterCandidate> queue(LaterCandidate{}, std::move(storage));
  for (std::int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeResult* m = find_merge(symbols[i].id, symbols[i + 1].id)) queue.push({m->rank, i, m->merged});
  }

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const std::int32_t right_pos = left.next;
    Symbol& right = symbols[right_pos];
    // Stale entry: the pair at this position is no longer the one this candidate was made for.
    const MergeResult* current = find_merge(left.id, right.id);
    if (current == nullptr || current->merged != top.merged) continue;

    left.id = top.merged;
    left.next = right.next;
    right.alive = false;
    if (right.next >= 0) symbols[right.next].prev = top.pos;

    if (left.prev >= 0) {
      if (const MergeResult* m = find_merge(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->merged});
    }
    if (left.next >= 0) {
      if (const MergeResult* m = find_merge(left.id, symbols[left.next].id)) queue.push({m->rank, top.pos, m->merged});
    }
  }

  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace moeslim::text
