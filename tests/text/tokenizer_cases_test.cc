// The tricky cases of the Qwen3 pipeline (spec §7.3-7.4, pitfall 10), invalid input, special-token
// handling and the vocabulary accessors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.h"
#include "text/byte_level.h"
#include "tokenizer_fixture.h"

namespace moeslim::testing {
namespace {

using Ids = std::vector<std::int32_t>;

Ids concat(std::initializer_list<Ids> parts) {
  Ids all;
  for (const Ids& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

bool contains(const Ids& ids, std::int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

TEST(TokenizerCases, AddedTokenIsMatchedBeforeNfcSoACombiningMarkDoesNotComposeWithIt) {
  const text::Tokenizer& t = qwen3_tokenizer();
  const std::int32_t im_end = *t.token_to_id("<|im_end|>");
  // "<|im_end|>" stays one token; U+0338 is tokenized on its own instead of composing ">" into "≯".
  EXPECT_EQ(t.encode("a<|im_end|>\u0338b"), concat({t.encode("a"), {im_end}, t.encode("\u0338b")}));
  // Without the added token, NFC does compose ">" + U+0338 into U+226F.
  EXPECT_EQ(t.encode("a>\u0338b"), t.encode("a\u226Fb"));
  EXPECT_NE(t.encode("a>\u0338b"), concat({t.encode("a>"), t.encode("\u0338b")}));
}

TEST(TokenizerCases, AddedTokenWithoutClosingBarsIsPlainText) {
  const text::Tokenizer& t = qwen3_tokenizer();
  const Ids ids = t.encode("<|endoftext");
  EXPECT_FALSE(contains(ids, 151643));
  EXPECT_GT(ids.size(), 1u);
  EXPECT_EQ(t.decode(ids), "<|endoftext");
  EXPECT_EQ(t.encode("x<|endoftext|>"), concat({t.encode("x"), {151643}}));
}

TEST(TokenizerCases, NonSpecialAddedTokensAreMatchedToo) {
  const text::Tokenizer& t = qwen3_tokenizer();
  EXPECT_EQ(t.encode("<think>"), Ids{151667});
  EXPECT_EQ(t.encode("<tool_call></tool_call>"), (Ids{151657, 151658}));
  EXPECT_EQ(t.encode("<|fim_prefix|><|fim_middle|>"), (Ids{151659, 151660}));
}

TEST(TokenizerCases, SplitSpecialTokensTurnsSpecialTokensIntoText) {
  const text::Tokenizer& t = qwen3_tokenizer();
  const text::EncodeOptions split{.split_special_tokens = true};
  const Ids ids = t.encode("a<|endoftext|>b<|im_start|>", split);
  EXPECT_FALSE(contains(ids, 151643));
  EXPECT_FALSE(contains(ids, 151644));
  EXPECT_EQ(t.decode(ids), "a<|endoftext|>b<|im_start|>");
  // Non-special added tokens are still matched, as in transformers.
  EXPECT_TRUE(contains(t.encode("<|endoftext|><think>", split), 151667));
  EXPECT_EQ(t.encode("<|endoftext|>"), Ids{151643});  // the default is unchanged
}

TEST(TokenizerCases, SetSplitSpecialTokensChangesTheDefault) {
  text::Tokenizer t = text::Tokenizer::from_model_dir_or_file(bundled_model_dir());
  const std::int32_t eot = *t.token_to_id("<|endoftext|>");
  EXPECT_FALSE(t.split_special_tokens());
  EXPECT_EQ(t.encode("<|endoftext|>"), Ids{eot});
  t.set_split_special_tokens(true);
  EXPECT_FALSE(contains(t.encode("<|endoftext|>"), eot));
}

TEST(TokenizerCases, ByteOrderMarkAndMongolianVowelSeparatorAreNotWhitespace) {
  const text::Tokenizer& t = qwen3_tokenizer();
  // As non-whitespace symbols, a run of them is one punctuation piece: the ids do not depend on what follows.
  for (const char* mark : {"\uFEFF", "\u180E"}) {
    const std::string two = std::string(mark) + mark;
    EXPECT_EQ(t.encode(two + "a"), concat({t.encode(two), t.encode("a")})) << mark;
    EXPECT_EQ(t.decode(t.encode(" " + two + " x")), " " + two + " x");
  }
}

TEST(TokenizerCases, ContractionsFoldCaseWithUnicodeRules) {
  const text::Tokenizer& t = qwen3_tokenizer();
  // "it'ſx" splits as it | 'ſ | x: (?i:'s) matches U+017F LONG S.
  EXPECT_EQ(t.encode("it'\u017Fx"), concat({t.encode("it"), t.encode("'\u017F"), t.encode("x")}));
  EXPECT_EQ(t.encode("IT'S"), concat({t.encode("IT"), t.encode("'S")}));
}

TEST(TokenizerCases, DigitsAreSplitOneByOne) {
  const text::Tokenizer& t = qwen3_tokenizer();
  const Ids ids = t.encode("1234567890");
  ASSERT_EQ(ids.size(), 10u);
  for (int d = 0; d < 10; ++d) EXPECT_EQ(ids[d], *t.token_to_id(std::string(1, static_cast<char>('0' + (d + 1) % 10))));
  // \p{N} includes letter numbers and other numbers: each is its own piece.
  EXPECT_EQ(t.encode("\u216B\u00BD\u00B2"), concat({t.encode("\u216B"), t.encode("\u00BD"), t.encode("\u00B2")}));
}

TEST(TokenizerCases, LongWhitespaceRunsRoundTrip) {
  const text::Tokenizer& t = qwen3_tokenizer();
  for (const std::string& ws : {std::string(5000, ' '), std::string(3000, '\n'), std::string(2000, '\t')}) {
    const std::string s = "a" + ws + "b" + ws;
    EXPECT_EQ(t.decode(t.encode(s)), s);
  }
  // The lookahead leaves the last space of a run to prefix the next word.
  EXPECT_EQ(t.encode("a" + std::string(9, ' ') + "b"), concat({t.encode("a"), t.encode(std::string(8, ' ')), t.encode(" b")}));
}

TEST(TokenizerCases, HundredThousandLetterWordIsFast) {
  const text::Tokenizer& t = qwen3_tokenizer();
  std::mt19937 rng(7);
  std::string word;
  for (int i = 0; i < 100000; ++i) word.push_back(static_cast<char>('a' + rng() % 26));
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = t.encode(word);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 0.5);
  EXPECT_GT(ids.size(), 10000u);
  EXPECT_EQ(t.decode(ids), word);
  // A single repeated letter is the other extreme: long runs of equal-rank merges.
  const std::string same(100000, 'a');
  const auto start2 = std::chrono::steady_clock::now();
  EXPECT_EQ(t.decode(t.encode(same)), same);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start2).count(), 0.5);
}

TEST(TokenizerCases, InvalidUtf8BecomesReplacementCharacters) {
  const text::Tokenizer& t = qwen3_tokenizer();
  EXPECT_EQ(t.encode("a\xFF" "b\xC3"), t.encode("a\uFFFDb\uFFFD"));
  EXPECT_EQ(t.encode("\xED\xA0\x80"), t.encode("\uFFFD\uFFFD\uFFFD"));  // an encoded surrogate
  EXPECT_EQ(t.encode("\xF0\x9F\x98"), t.encode("\uFFFD"));              // a truncated emoji
  // Every byte value in every position: nothing crashes and the output decodes to valid UTF-8.
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    std::string junk;
    for (int k = 0; k < 64; ++k) junk.push_back(static_cast<char>(rng() & 0xFF));
    const std::string decoded = t.decode(t.encode(junk));
    EXPECT_EQ(t.encode(decoded), t.encode(junk));
  }
}

TEST(TokenizerCases, DecodeReplacesBrokenUtf8AndRejectsUnknownIds) {
  const text::Tokenizer& t = qwen3_tokenizer();
  auto byte_id = [&](std::uint8_t b) { return *t.token_to_id(text::byte_symbol(b)); };
  // The first two bytes of U+4E2D (E4 B8 AD) are one maximal subpart: one U+FFFD.
  EXPECT_EQ(t.decode(Ids{byte_id('a'), byte_id(0xE4), byte_id(0xB8), byte_id('b')}), "a\uFFFDb");
  EXPECT_EQ(t.decode(Ids{byte_id(0xE4), byte_id(0xB8), byte_id(0xAD)}), "\u4E2D");
  EXPECT_EQ(t.decode(Ids{}), "");
  try {
    t.decode(Ids{9707, 151669});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.field(), "ids[1]");
  }
  EXPECT_THROW(t.decode(Ids{-1}), Error);
}

TEST(TokenizerCases, EmptyAndControlText) {
  const text::Tokenizer& t = qwen3_tokenizer();
  EXPECT_TRUE(t.encode("").empty());
  const std::string nul("a\0b", 3);
  EXPECT_EQ(t.decode(t.encode(nul)), nul);
}

TEST(TokenizerCases, VocabularyAccessors) {
  const text::Tokenizer& t = qwen3_tokenizer();
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_to_id("\u0120"), 220);  // 'Ġ', the space byte
  EXPECT_EQ(t.token_to_id("no such token"), std::nullopt);
  EXPECT_EQ(t.id_to_token(151644), "<|im_start|>");
  EXPECT_EQ(t.id_to_token(198), "\u010A");  // 'Ċ', the line feed byte
  EXPECT_EQ(t.id_to_token(151669), std::nullopt);
  EXPECT_EQ(t.id_to_token(-5), std::nullopt);
  EXPECT_EQ(t.pad_id(), 151643);
  EXPECT_EQ(t.eos_id(), 151645);  // tokenizer_config.json: <|im_end|>

  const text::Tokenizer& tiny = tiny_tokenizer();
  EXPECT_EQ(tiny.vocab_size(), 4026);
  EXPECT_EQ(tiny.pad_id(), 4000);
}

TEST(TokenizerCases, FromFileReadsNoConfig) {
  const text::Tokenizer t = text::Tokenizer::from_file(bundled_model_dir() / "tokenizer.json");
  EXPECT_EQ(t.pad_id(), 4000);  // "<|endoftext|>" by default
  EXPECT_EQ(t.eos_id(), std::nullopt);
  const text::Tokenizer same = text::Tokenizer::from_model_dir_or_file(bundled_model_dir() / "tokenizer.json");
  EXPECT_EQ(same.eos_id(), 4002);  // the config beside the file is read
}

TEST(TokenizerCases, TokenizerConfigPadTokenMustExist) {
  TempDir dir("tokenizer_config");
  std::filesystem::copy_file(bundled_model_dir() / "tokenizer.json", dir.path() / "tokenizer.json");
  std::ofstream(dir.path() / "tokenizer_config.json") << R"({"pad_token": {"content": "<|im_end|>"}, "eos_token": null})";
  const text::Tokenizer t = text::Tokenizer::from_model_dir_or_file(dir.path());
  EXPECT_EQ(t.pad_id(), 4002);
  EXPECT_EQ(t.eos_id(), std::nullopt);

  std::ofstream(dir.path() / "tokenizer_config.json") << R"({"pad_token": "<pad>"})";
  try {
    text::Tokenizer::from_model_dir_or_file(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_EQ(e.file(), (dir.path() / "tokenizer_config.json").string());
    EXPECT_EQ(e.field(), "pad_token");
  }
}

TEST(TokenizerCases, MissingPathIsNotFound) {
  try {
    text::Tokenizer::from_model_dir_or_file(source_dir() / "no_such_model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  TempDir empty("tokenizer_empty_dir");
  try {
    text::Tokenizer::from_model_dir_or_file(empty.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.file(), (empty.path() / "tokenizer.json").string());
  }
}

TEST(TokenizerCases, ConcurrentEncodesAgree) {
  const text::Tokenizer t = text::Tokenizer::from_model_dir_or_file(bundled_model_dir());
  const auto cases = read_reference_ids(test_data_dir() / "reference" / "tiny_tokenizer_ids.json");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (std::size_t i = 0; i < cases.size(); ++i) {
        const ReferenceCase& c = cases[(i + k * 31) % cases.size()];
        if (t.encode(c.text) != c.ids) ++mismatches;
        if (i % 16 == 0) t.clear_cache();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerCases, CacheDoesNotChangeResults) {
  const text::Tokenizer t = text::Tokenizer::from_file(bundled_model_dir() / "tokenizer.json");
  const std::string s = "The cache holds pieces; the cache holds pieces again.";
  const Ids cold = t.encode(s);
  EXPECT_GT(t.cache_size(), 0u);
  EXPECT_EQ(t.encode(s), cold);
  t.clear_cache();
  EXPECT_EQ(t.cache_size(), 0u);
  EXPECT_EQ(t.encode(s), cold);
}

}  // namespace
}  // namespace moeslim::testing
