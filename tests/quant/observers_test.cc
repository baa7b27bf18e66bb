// The activation observers: MinMaxMeanObserver is msModelSlim's StatMinMaxObserver (spec §4.4: the bf16 mean
// over batches of each batch's whole-tensor min and max, not the global extremes); ChannelStatsObserver is the
// per-channel max / min / max|x| of the m4 statistics (§3.3). Padding rows count only with include_padding (§7.3).
#include "quant/observers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace moeslim::quant {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(MinMaxMeanObserver, RangeIsTheMeanOfPerBatchExtremesNotTheGlobalOnes) {
  MinMaxMeanObserver obs(false, DType::kBF16);
  const float b1[] = {-1.0f, 2.0f, 0.5f, 0.0f};  // min −1, max 2
  const float b2[] = {-3.0f, 1.0f, 0.0f, 0.0f};  // min −3, max 1
  obs.observe(b1, 2, 2, nullptr);
  EXPECT_EQ(obs.min(), -1.0f);
  EXPECT_EQ(obs.max(), 2.0f);
  obs.observe(b2, 2, 2, nullptr);
  EXPECT_EQ(obs.batches(), 2);
  EXPECT_EQ(obs.min(), -2.0f);  // global min would be −3
  EXPECT_EQ(obs.max(), 1.5f);   // global max would be 2
  const ActivationParams p = obs.params();
  // scale = bf16(3.5/255), offset = −128 − rne(bf16(−2/scale)): −2/0.01373291 = −145.64 → bf16 −146 → 18.
  EXPECT_EQ(p.scale, round_to_bf16(3.5f / 255.0f));
  EXPECT_EQ(p.offset, 18.0f);
}

TEST(MinMaxMeanObserver, PerBatchExtremesAreRoundedToBf16BeforeTheMean) {
  // Batch maxima 1.0087890625 (bf16 1.0078125) and 1.0: Σ = 2.0078125 → bf16 (tie, to even) 2.0 → mean 1.0.
  // Averaging the unrounded maxima would give bf16(2.0087890625) = 2.015625 → 1.0078125.
  MinMaxMeanObserver obs(false, DType::kBF16);
  const float b1[] = {1.0087890625f, 0.0f};
  const float b2[] = {1.0f, 0.0f};
  obs.observe(b1, 1, 2, nullptr);
  obs.observe(b2, 1, 2, nullptr);
  EXPECT_EQ(obs.max(), 1.0f);
  EXPECT_EQ(obs.min(), 0.0f);
}

TEST(MinMaxMeanObserver, PadRowsAreSkippedUnlessIncludePadding) {
  const float x[] = {-1.0f, 1.0f,    // real
                     -50.0f, 40.0f,  // pad
                     0.0f, 2.0f};    // real
  const std::uint8_t real[] = {1, 0, 1};
  MinMaxMeanObserver skip(false, DType::kBF16), keep(true, DType::kBF16);
  skip.observe(x, 3, 2, real);
  keep.observe(x, 3, 2, real);
  EXPECT_EQ(skip.min(), -1.0f);
  EXPECT_EQ(skip.max(), 2.0f);
  EXPECT_EQ(keep.min(), -50.0f);
  EXPECT_EQ(keep.max(), 40.0f);
}

TEST(MinMaxMeanObserver, BatchOfOnlyPadsIsNotCounted) {
  const float real_batch[] = {-1.0f, 3.0f};
  const float pad_batch[] = {-9.0f, 9.0f};
  const std::uint8_t pad[] = {0};
  MinMaxMeanObserver skip(false, DType::kBF16);
  skip.observe(real_batch, 1, 2, nullptr);
  skip.observe(pad_batch, 1, 2, pad);
  EXPECT_EQ(skip.batches(), 1);
  EXPECT_EQ(skip.min(), -1.0f);  // a counted empty batch would pull the mean, e.g. to −0.5 or −5
  EXPECT_EQ(skip.max(), 3.0f);

  MinMaxMeanObserver keep(true, DType::kBF16);  // with include_padding the pad batch is a batch like any other
  keep.observe(real_batch, 1, 2, nullptr);
  keep.observe(pad_batch, 1, 2, pad);
  EXPECT_EQ(keep.batches(), 2);
  EXPECT_EQ(keep.min(), -5.0f);
  EXPECT_EQ(keep.max(), 6.0f);
}

TEST(MinMaxMeanObserver, NoBatchMeansNoRange) {
  MinMaxMeanObserver obs(false, DType::kBF16);
  EXPECT_EQ(obs.batches(), 0);
  EXPECT_THROW(obs.min(), Error);
  EXPECT_THROW(obs.max(), Error);
  EXPECT_THROW(obs.params(), Error);
}

TEST(MinMaxMeanObserver, NonFiniteInputIsRejected) {
  for (const float bad : {NAN, kInf, -kInf}) {
    MinMaxMeanObserver obs(true, DType::kBF16);
    const float x[] = {0.0f, 1.0f, bad, 2.0f};
    EXPECT_THROW(obs.observe(x, 2, 2, nullptr), Error) << bad;
  }
}

TEST(ChannelStatsObserver, PerChannelExtremesAcrossCalls) {
  ChannelStatsObserver obs(false);
  // Channel 0 is all negative: its max must be negative (not a 0 initial value); channel 2's abs max comes from
  // its min.
  const float a[] = {-3.0f, 1.0f, 2.0f,
                     -2.0f, 5.0f, -7.0f};
  const float b[] = {-4.0f, 0.5f, 1.0f};
  obs.observe(a, 2, 3, nullptr);
  obs.observe(b, 1, 3, nullptr);
  EXPECT_EQ(obs.channels(), 3);
  EXPECT_EQ(obs.rows_observed(), 3);
  EXPECT_EQ(obs.max(), (std::vector<float>{-2.0f, 5.0f, 2.0f}));
  EXPECT_EQ(obs.min(), (std::vector<float>{-4.0f, 0.5f, -7.0f}));
  EXPECT_EQ(obs.abs_max(), (std::vector<float>{4.0f, 5.0f, 7.0f}));
}

TEST(ChannelStatsObserver, PadRowsAreSkippedUnlessIncludePadding) {
  const float x[] = {1.0f, -1.0f,
                     100.0f, -100.0f,  // pad
                     0.5f, 2.0f};
  const std::uint8_t real[] = {1, 0, 1};
  ChannelStatsObserver skip(false), keep(true);
  skip.observe(x, 3, 2, real);
  keep.observe(x, 3, 2, real);
  EXPECT_EQ(skip.rows_observed(), 2);
  EXPECT_EQ(skip.max(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(skip.min(), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(skip.abs_max(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(keep.rows_observed(), 3);
  EXPECT_EQ(keep.max(), (std::vector<float>{100.0f, 2.0f}));
  EXPECT_EQ(keep.min(), (std::vector<float>{0.5f, -100.0f}));
  EXPECT_EQ(keep.abs_max(), (std::vector<float>{100.0f, 100.0f}));
}

TEST(ChannelStatsObserver, RejectsNonFiniteValuesAndChangingWidths) {
  ChannelStatsObserver obs(true);
  const float bad[] = {1.0f, NAN};
  EXPECT_THROW(obs.observe(bad, 1, 2, nullptr), Error);
  ChannelStatsObserver widths(true);
  const float x[] = {1.0f, 2.0f, 3.0f};
  widths.observe(x, 1, 3, nullptr);
  EXPECT_THROW(widths.observe(x, 1, 2, nullptr), Error);
}

}  // namespace
}  // namespace moeslim::quant
