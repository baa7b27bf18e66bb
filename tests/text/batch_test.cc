// Padded batches: order, right/left padding, masks, lengths and truncation.
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/batch.h"

namespace moeslim::testing {
namespace {

using Ids = std::vector<std::int32_t>;
using Mask = std::vector<std::uint8_t>;
constexpr std::int32_t kPad = 99;

const std::vector<Ids> kSequences = {{1, 2, 3}, {4}, {5, 6}, {7, 8, 9, 10, 11}, {}};

TEST(Batch, RightPaddingKeepsOrderAndMasksPads) {
  std::int64_t truncated = -1;
  const auto batches = text::make_batches(kSequences, 2, kPad, text::PadSide::kRight, 0, &truncated);
  EXPECT_EQ(truncated, 0);
  ASSERT_EQ(batches.size(), 3u);

  EXPECT_EQ(batches[0].batch, 2);
  EXPECT_EQ(batches[0].seq_len, 3);
  EXPECT_EQ(batches[0].ids, (Ids{1, 2, 3, 4, kPad, kPad}));
  EXPECT_EQ(batches[0].mask, (Mask{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(batches[0].lengths, (Ids{3, 1}));

  EXPECT_EQ(batches[1].seq_len, 5);
  EXPECT_EQ(batches[1].ids, (Ids{5, 6, kPad, kPad, kPad, 7, 8, 9, 10, 11}));
  EXPECT_EQ(batches[1].mask, (Mask{1, 1, 0, 0, 0, 1, 1, 1, 1, 1}));

  // The last batch is smaller; an empty sequence gives an empty row.
  EXPECT_EQ(batches[2].batch, 1);
  EXPECT_EQ(batches[2].seq_len, 0);
  EXPECT_TRUE(batches[2].ids.empty());
  EXPECT_EQ(batches[2].lengths, Ids{0});
}

TEST(Batch, LeftPaddingPutsPadsFirst) {
  const auto batches = text::make_batches(kSequences, 3, kPad, text::PadSide::kLeft);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].ids, (Ids{1, 2, 3, kPad, kPad, 4, kPad, 5, 6}));
  EXPECT_EQ(batches[0].mask, (Mask{1, 1, 1, 0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(batches[0].lengths, (Ids{3, 1, 2}));
  EXPECT_EQ(batches[1].ids, (Ids{7, 8, 9, 10, 11, kPad, kPad, kPad, kPad, kPad}));
  EXPECT_EQ(batches[1].mask, (Mask{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}));
}

TEST(Batch, TruncationKeepsTheFirstTokensAndCounts) {
  std::int64_t truncated = 0;
  const auto batches = text::make_batches(kSequences, 8, kPad, text::PadSide::kRight, 2, &truncated);
  EXPECT_EQ(truncated, 2);  // {1,2,3} and {7,...,11}
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].batch, 5);
  EXPECT_EQ(batches[0].seq_len, 2);
  EXPECT_EQ(batches[0].ids, (Ids{1, 2, 4, kPad, 5, 6, 7, 8, kPad, kPad}));
  EXPECT_EQ(batches[0].lengths, (Ids{2, 1, 2, 2, 0}));
}

TEST(Batch, EmptyInputAndBadArguments) {
  EXPECT_TRUE(text::make_batches({}, 4, kPad).empty());
  EXPECT_THROW(text::make_batches(kSequences, 0, kPad), Error);
  EXPECT_THROW(text::make_batches(kSequences, 2, kPad, text::PadSide::kRight, -1), Error);
}

}  // namespace
}  // namespace moeslim::testing
