#include "pipeline/calibration_data.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "text/batch.h"
#include "text/dataset.h"

namespace moeslim::pipeline {

CalibrationSet load_calibration_set(const std::filesystem::path& file, const text::Tokenizer& tokenizer,
                                    std::int64_t batch_size, bool include_padding, std::int64_t max_length) {
  if (batch_size < 1 || batch_size > 16) {
    throw Error(ErrorCode::kInvalidArgument, "must be between 1 and 16, got " + std::to_string(batch_size), "",
                "--batch_size");
  }
  const std::vector<std::string> texts = text::read_text_dataset(file);
  std::vector<std::vector<std::int32_t>> sequences;
  sequences.reserve(texts.size());
  CalibrationSet set;
  set.batch_size = batch_size;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    auto ids = tokenizer.encode(texts[i]);
    if (ids.empty()) {
      log_warn("{}: prompt {} encodes to no token; skipped", file.string(), i);
      continue;
    }
    if (max_length > 0 && static_cast<std::int64_t>(ids.size()) > max_length) {
      ids.resize(static_cast<std::size_t>(max_length));
      ++set.truncated;
    }
    sequences.push_back(std::move(ids));
  }
  if (set.truncated > 0) {
    log_warn("{}: {} of {} prompts were longer than the model's context (max_position_embeddings {}) and were "
             "truncated to their first {} tokens",
             file.string(), set.truncated, sequences.size(), max_length, max_length);
  }
  if (sequences.empty()) throw Error(ErrorCode::kInvalidArgument, "no usable prompt in the dataset", file.string());
  set.prompts = static_cast<std::int64_t>(sequences.size());

  if (!include_padding) {
    for (const auto& ids : sequences) {
      set.tokens.ids.insert(set.tokens.ids.end(), ids.begin(), ids.end());
      set.tokens.layout.add_sequence(static_cast<std::int64_t>(ids.size()));
    }
    return set;
  }
  for (const text::Batch& b : text::make_batches(sequences, static_cast<int>(batch_size), tokenizer.pad_id(),
                                                 text::PadSide::kRight)) {
    for (std::int64_t r = 0; r < b.batch; ++r) {
      const auto begin = static_cast<std::size_t>(r * b.seq_len);
      set.tokens.ids.insert(set.tokens.ids.end(), b.ids.begin() + begin, b.ids.begin() + begin + b.seq_len);
      set.tokens.layout.add_sequence(b.seq_len, b.mask.data() + begin);
    }
  }
  return set;
}

}  // namespace moeslim::pipeline
