// The BPE merge order on a hand-made merge table: lowest rank first, leftmost on ties.
#include <gtest/gtest.h>

#include "text/bpe.h"

namespace moeslim::testing {
namespace {

using Ids = std::vector<std::int32_t>;

// Byte b has id b; merged tokens get ids from 300 up.
text::BpeModel make_model() {
  std::array<std::int32_t, 256> byte_ids{};
  for (int b = 0; b < 256; ++b) byte_ids[b] = b;
  text::BpeModel model(byte_ids);
  model.add_merge('a', 'a', 0, 300);  // "aa"
  model.add_merge('b', 'c', 1, 301);  // "bc"
  model.add_merge('a', 'b', 2, 302);  // "ab"
  model.add_merge(300, 300, 3, 303);  // "aaaa"
  model.add_merge(302, 'c', 4, 304);  // "abc" from "ab"+"c" (never reached when "bc" merges first)
  return model;
}

Ids encode(const text::BpeModel& model, std::string_view s) {
  Ids out;
  model.encode_piece(s, out);
  return out;
}

TEST(Bpe, LowestRankFirstLeftmostOnTies) {
  const text::BpeModel model = make_model();
  EXPECT_EQ(encode(model, ""), Ids{});
  EXPECT_EQ(encode(model, "x"), Ids{'x'});
  EXPECT_EQ(encode(model, "aaa"), (Ids{300, 'a'}));        // leftmost "aa" wins the tie
  EXPECT_EQ(encode(model, "aaaaa"), (Ids{303, 'a'}));
  EXPECT_EQ(encode(model, "abc"), (Ids{'a', 301}));        // "bc" (rank 1) before "ab" (rank 2)
  EXPECT_EQ(encode(model, "abd"), (Ids{302, 'd'}));
  EXPECT_EQ(encode(model, "aab"), (Ids{300, 'b'}));        // "aa" (rank 0) consumes the a before "ab"
}

TEST(Bpe, LongInputMergesCompletely) {
  const text::BpeModel model = make_model();
  const Ids ids = encode(model, std::string(100001, 'a'));
  ASSERT_EQ(ids.size(), 25001u);
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) ASSERT_EQ(ids[i], 303);
  EXPECT_EQ(ids.back(), 'a');
}

}  // namespace
}  // namespace moeslim::testing
