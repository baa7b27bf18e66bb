// Activation statistics gathered during the forward passes. Both observers skip padding rows unless told to
// include them (msModelSlim includes them: docs/msmodelslim-algorithms.md §7.3).
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "quant/activation_quant.h"

namespace moeslim::quant {

// Per-channel extremes of a linear's input over every observed row (anti-outlier statistics, §3.3):
// max_c, min_c and max_c |x|. Values are the exact float32 extremes; consumers round them to the model dtype.
class ChannelStatsObserver {
 public:
  explicit ChannelStatsObserver(bool include_padding) : include_padding_(include_padding) {}

  // x: [rows, cols]; real[r] == 0 marks a pad row (real may be null: all rows real). Every call must have the
  // same cols. NaN/Inf values are rejected (kInvalidArgument) rather than silently poisoning the statistics.
  void observe(const float* x, std::int64_t rows, std::int64_t cols, const std::uint8_t* real);

  std::int64_t channels() const { return static_cast<std::int64_t>(max_.size()); }
  std::int64_t rows_observed() const { return rows_; }
  const std::vector<float>& max() const { return max_; }
  const std::vector<float>& min() const { return min_; }
  const std::vector<float>& abs_max() const { return abs_max_; }

 private:
  bool include_padding_;
  std::int64_t rows_ = 0;
  std::vector<float> max_, min_, abs_max_;
};

// msModelSlim's StatMinMaxObserver (act_method=1, §4.4): each observe() call is one calibration batch; it
// records the batch's whole-tensor min and max, and the range is the dtype mean over batches of those
// per-batch extremes (not a global min/max). A batch with no real row is not counted.
class MinMaxMeanObserver {
 public:
  MinMaxMeanObserver(bool include_padding, DType float_dtype)
      : include_padding_(include_padding), float_dtype_(float_dtype) {}

  void observe(const float* x, std::int64_t rows, std::int64_t cols, const std::uint8_t* real);

  std::int64_t batches() const { return static_cast<std::int64_t>(batch_min_.size()); }
  // The running means; kInvalidArgument before any batch.
  float min() const;
  float max() const;
  // asymmetric_int8_params(min(), max()).
  ActivationParams params() const;

 private:
  bool include_padding_;
  DType float_dtype_;
  std::vector<float> batch_min_, batch_max_;  // per batch, rounded to the model dtype
};

}  // namespace moeslim::quant
