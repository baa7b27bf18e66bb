// Calibration prompts as the pipeline consumes them: tokenized, and laid out in batches of `batch_size`
// prompts. By default each batch packs its prompts without padding (pads would only be excluded from every
// statistic anyway); with `include_padding` the prompts of a batch are right-padded to the batch's longest with
// the tokenizer's pad id, as msModelSlim's script does, and the pads enter the statistics.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace moeslim::pipeline {

struct CalibrationSet {
  model::TokenSet tokens;
  std::int64_t prompts = 0;
  std::int64_t batch_size = 1;    // sequences per forward chunk (padded batches are one sequence per prompt)
  std::int64_t truncated = 0;     // prompts cut to the model's context length
};

CalibrationSet load_calibration_set(const std::filesystem::path& file, const text::Tokenizer& tokenizer,
                                    std::int64_t batch_size, bool include_padding, std::int64_t max_length);

}  // namespace moeslim::pipeline
