#include "quant/observers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace moeslim::quant {
namespace {

void reject_non_finite(const float* row, std::int64_t cols, std::int64_t r) {
  for (std::int64_t c = 0; c < cols; ++c) {
    if (!std::isfinite(row[c])) {
      throw Error(ErrorCode::kInvalidArgument,
                  "activation row " + std::to_string(r) + " channel " + std::to_string(c) +
                      " is not finite (" + std::to_string(row[c]) + "): the model or the calibration data "
                      "overflows; statistics would be meaningless");
    }
  }
}

}  // namespace

void ChannelStatsObserver::observe(const float* x, std::int64_t rows, std::int64_t cols, const std::uint8_t* real) {
  if (max_.empty()) {
    max_.assign(static_cast<std::size_t>(cols), -std::numeric_limits<float>::infinity());
    min_.assign(static_cast<std::size_t>(cols), std::numeric_limits<float>::infinity());
    abs_max_.assign(static_cast<std::size_t>(cols), 0.0f);
  } else if (cols != channels()) {
    throw Error(ErrorCode::kInternal, "channel statistics: " + std::to_string(cols) + " channels after " +
                                          std::to_string(channels()));
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    if (!include_padding_ && real != nullptr && real[r] == 0) continue;
    const float* row = x + r * cols;
    reject_non_finite(row, cols, r);
    for (std::int64_t c = 0; c < cols; ++c) {
      const auto i = static_cast<std::size_t>(c);
      max_[i] = std::max(max_[i], row[c]);
      min_[i] = std::min(min_[i], row[c]);
      abs_max_[i] = std::max(abs_max_[i], std::fabs(row[c]));
    }
    ++rows_;
  }
}

void MinMaxMeanObserver::observe(const float* x, std::int64_t rows, std::int64_t cols, const std::uint8_t* real) {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (!include_padding_ && real != nullptr && real[r] == 0) continue;
    const float* row = x + r * cols;
    reject_non_finite(row, cols, r);
    for (std::int64_t c = 0; c < cols; ++c) {
      lo = std::min(lo, row[c]);
      hi = std::max(hi, row[c]);
    }
    any = any || cols > 0;
  }
  if (!any) return;
  // The activations are in the model dtype in msModelSlim; rounding is monotonic, so rounding the float32
  // extreme gives the extreme of the rounded values.
  batch_min_.push_back(round_to_float_dtype(lo, float_dtype_));
  batch_max_.push_back(round_to_float_dtype(hi, float_dtype_));
}

float MinMaxMeanObserver::min() const {
  if (batch_min_.empty()) throw Error(ErrorCode::kInvalidArgument, "activation observer saw no calibration token");
  return dtype_mean(batch_min_, float_dtype_);
}

float MinMaxMeanObserver::max() const {
  if (batch_max_.empty()) throw Error(ErrorCode::kInvalidArgument, "activation observer saw no calibration token");
  return dtype_mean(batch_max_, float_dtype_);
}

ActivationParams MinMaxMeanObserver::params() const { return asymmetric_int8_params(min(), max(), float_dtype_); }

}  // namespace moeslim::quant
