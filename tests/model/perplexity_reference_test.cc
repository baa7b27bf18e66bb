// `eval`'s perplexity protocol reproduces the reference perplexity of both shared tiny models.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/perplexity.h"
#include "io/checkpoint.h"
#include "io/json_file.h"
#include "model/config.h"
#include "common/test_paths.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

namespace moeslim::eval {
namespace {

TEST(EvalWindows, ProtocolCutsConsecutiveWindowsAndDropsShortTail) {
  const model::TokenSet set = make_eval_windows({{1, 2, 3}, {4, 5}}, 9, 3);
  // stream: 1 2 3 9 4 5 9 -> [1 2 3] [9 4 5] and a 1-token tail [9] that is dropped
  ASSERT_EQ(set.layout.sequences.size(), 2u);
  EXPECT_EQ(set.ids, (std::vector<std::int32_t>{1, 2, 3, 9, 4, 5}));
  EXPECT_EQ(set.layout.positions, (std::vector<std::int64_t>{0, 1, 2, 0, 1, 2}));
  const model::TokenSet two = make_eval_windows({{1, 2, 3}}, 9, 3);  // stream 1 2 3 9: tail [9] dropped
  EXPECT_EQ(two.layout.sequences.size(), 1u);
  const model::TokenSet keep = make_eval_windows({{1, 2, 3, 4}}, 9, 3);  // tail [4 9] kept
  EXPECT_EQ(keep.layout.sequences.size(), 2u);
}

class PerplexityReference : public ::testing::TestWithParam<std::string> {};

TEST_P(PerplexityReference, MatchesReferenceWithinOneInTenThousand) {
  const auto model_dir = testing::source_dir() / "models" / GetParam();
  const auto reference = io::read_json_file(testing::test_data_dir() / "reference" / GetParam() / "reference.json");
  const double want = reference["perplexity"]["value"].get<double>();
  const std::int64_t want_tokens = reference["perplexity"]["predicted_tokens"].get<std::int64_t>();

  const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(model_dir);
  std::vector<std::vector<std::int32_t>> documents;
  for (const auto& t : text::read_text_dataset(testing::bundled_data_dir() / "eval_valid.jsonl")) {
    documents.push_back(tokenizer.encode(t));
  }
  const model::TokenSet windows = make_eval_windows(documents, *tokenizer.token_to_id("<|endoftext|>"), 256);
  const model::ModelConfig config = model::ModelConfig::load(model_dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(model_dir);
  model::CheckpointLayerSource source(checkpoint, config, model::FloatPrecision::kF32);
  const EvalResult r = evaluate(source, nullptr, windows, {});
  EXPECT_EQ(r.predicted_tokens, want_tokens);
  EXPECT_NEAR(r.perplexity / want, 1.0, 1e-4) << "perplexity " << r.perplexity << " vs reference " << want;
}

INSTANTIATE_TEST_SUITE_P(SharedTinyModels, PerplexityReference,
                         ::testing::ValuesIn(testing::kSharedTinyModels),
                         [](const auto& info) { return testing::model_param_name(info.param); });

}  // namespace
}  // namespace moeslim::eval
