// Token-for-token equality with Hugging Face `tokenizers` on the reference ids (computed independently of
// moeslim), the golden vectors of the spec (§7.4), and decode round trips.
#include <gtest/gtest.h>

#include <sstream>

#include "tokenizer_fixture.h"
#include "text/dataset.h"
#include "text/pre_tokenizer.h"

namespace moeslim::testing {
namespace {

std::string ids_to_string(const std::vector<std::int32_t>& ids) {
  std::ostringstream s;
  for (std::size_t i = 0; i < ids.size(); ++i) s << (i ? " " : "") << ids[i];
  return s.str();
}

// Compares every case and reports how many differ, with the first differing text in full.
void expect_all_equal(const text::Tokenizer& tokenizer, const std::vector<ReferenceCase>& cases) {
  std::size_t differing = 0;
  std::string first_report;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::vector<std::int32_t> ids = tokenizer.encode(cases[i].text);
    if (ids == cases[i].ids) continue;
    if (differing++ == 0) {
      first_report = "case " + std::to_string(i) + " text: " + cases[i].text + "\n expected: " +
                     ids_to_string(cases[i].ids) + "\n      got: " + ids_to_string(ids);
    }
  }
  EXPECT_EQ(differing, 0u) << differing << " of " << cases.size() << " texts differ; first:\n" << first_report;
}

TEST(TokenizerReference, Qwen3MatchesHuggingFaceOnAll119Texts) {
  const auto cases = read_reference_ids(test_data_dir() / "reference" / "qwen3_tokenizer_ids.json");
  ASSERT_EQ(cases.size(), 119u);
  expect_all_equal(qwen3_tokenizer(), cases);
}

TEST(TokenizerReference, TinyMatchesHuggingFaceOnAll119Texts) {
  const auto cases = read_reference_ids(test_data_dir() / "reference" / "tiny_tokenizer_ids.json");
  ASSERT_EQ(cases.size(), 119u);
  expect_all_equal(tiny_tokenizer(), cases);
}

TEST(TokenizerReference, TinyMatchesHuggingFaceOnEvalDocuments) {
  const auto cases = read_reference_ids(test_data_dir() / "reference" / "eval_valid_tiny_tokenizer_ids.json");
  const std::vector<std::string> documents = text::read_text_dataset(bundled_data_dir() / "eval_valid.jsonl");
  ASSERT_EQ(cases.size(), documents.size());
  for (std::size_t i = 0; i < cases.size(); ++i) ASSERT_EQ(cases[i].text, documents[i]) << "document " << i;
  expect_all_equal(tiny_tokenizer(), cases);
}

TEST(TokenizerReference, Qwen3GoldenVectors) {
  const text::Tokenizer& t = qwen3_tokenizer();
  EXPECT_EQ(t.encode("Hello, world! The quick brown fox jumps over the lazy dog."),
            (std::vector<std::int32_t>{9707, 11, 1879, 0, 576, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13}));
  EXPECT_EQ(t.encode("你好，世界！今天天气很好。我们一起去公园散步吧。"),
            (std::vector<std::int32_t>{108386, 3837, 99489, 6313, 100644, 104307, 101243, 1773, 97639, 110926, 102077,
                                       111261, 100003, 1773}));
  EXPECT_EQ(t.encode("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello<|endoftext|>"),
            (std::vector<std::int32_t>{151644, 872, 198, 13048, 1052, 151645, 198, 151644, 77091, 198, 151667, 271, 151668,
                                       271, 9707, 151643}));
  EXPECT_EQ(t.encode("   leading spaces and trailing   \n\n  "),
            (std::vector<std::int32_t>{256, 6388, 12621, 323, 27748, 33933, 256}));
}

// decode(encode(text)) gives the text back after NFC (the only lossy step of the pipeline).
TEST(TokenizerReference, DecodeOfEncodeIsNfcOfText) {
  for (const auto* file : {"qwen3_tokenizer_ids.json", "tiny_tokenizer_ids.json"}) {
    const text::Tokenizer& t = std::string(file).starts_with("qwen3") ? qwen3_tokenizer() : tiny_tokenizer();
    for (const ReferenceCase& c : read_reference_ids(test_data_dir() / "reference" / file)) {
      std::string storage;
      const std::string expected(text::normalize_nfc(c.text, storage));
      EXPECT_EQ(t.decode(t.encode(c.text)), expected) << file << ": " << c.text;
      EXPECT_EQ(t.decode(c.ids), expected) << file << ": " << c.text;
    }
  }
}

}  // namespace
}  // namespace moeslim::testing
