// tokenizer.json validation: malformed files are kFormat errors and pipelines moeslim does not implement are
// kUnsupported errors, each naming the file and the JSON field. Also the accepted variants: merges as "a b"
// strings, and GPT-2's single ByteLevel pre-tokenizer.
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/byte_level.h"
#include "tokenizer_fixture.h"

namespace moeslim::testing {
namespace {

using nlohmann::json;

constexpr const char* kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A complete, valid tokenizer.json in Qwen3's layout: the 256 byte symbols (ids 0-255), merges "a b" -> "ab"
// (256) and "ab c" -> "abc" (257), and one special added token.
json minimal_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[text::byte_symbol(static_cast<std::uint8_t>(b))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({json{{"id", 258}, {"content", "<|endoftext|>"}, {"single_word", false},
                                         {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}}})},
      {"normalizer", json{{"type", "NFC"}}},
      {"pre_tokenizer",
       json{{"type", "Sequence"},
            {"pretokenizers",
             json::array({json{{"type", "Split"}, {"pattern", json{{"Regex", kQwenPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                          json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", json{{"type", "ByteLevel"}}},
      {"model", json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                     {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                     {"vocab", vocab}, {"merges", json::array({json::array({"a", "b"}), json::array({"ab", "c"})})}}},
  };
}

// Loads `text` and expects an Error with this code and field, naming the file.
void expect_error(const std::string& text, ErrorCode code, const std::string& field) {
  try {
    text::Tokenizer::from_json(text, "bad/tokenizer.json");
    ADD_FAILURE() << "expected an error for field '" << field << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.file(), "bad/tokenizer.json") << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

void expect_error(const json& j, ErrorCode code, const std::string& field) { expect_error(j.dump(), code, field); }

TEST(TokenizerFormat, MinimalTokenizerWorks) {
  const text::Tokenizer t = text::Tokenizer::from_json(minimal_tokenizer_json().dump(), "minimal");
  EXPECT_EQ(t.encode("abc ab"), (std::vector<std::int32_t>{257, ' ', 256}));  // byte b has id b here
  EXPECT_EQ(t.encode("abcd<|endoftext|>"), (std::vector<std::int32_t>{257, 'd', 258}));
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.pad_id(), 258);
}

TEST(TokenizerFormat, NotJson) {
  expect_error(std::string("{\"model\": "), ErrorCode::kFormat, "");
  expect_error(std::string("[1, 2]"), ErrorCode::kFormat, "");
}

TEST(TokenizerFormat, MissingPieces) {
  json j = minimal_tokenizer_json();
  j["model"].erase("merges");
  expect_error(j, ErrorCode::kFormat, "model.merges");
  j = minimal_tokenizer_json();
  j["model"].erase("vocab");
  expect_error(j, ErrorCode::kFormat, "model.vocab");
  j = minimal_tokenizer_json();
  j.erase("model");
  expect_error(j, ErrorCode::kFormat, "model");
}

TEST(TokenizerFormat, UnknownModelType) {
  json j = minimal_tokenizer_json();
  j["model"]["type"] = "WordPiece";
  expect_error(j, ErrorCode::kUnsupported, "model.type");
}

TEST(TokenizerFormat, UnsupportedPreTokenizers) {
  json j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["type"] = "Punctuation";
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers[0].type");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers[0].behavior");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = json{{"String", " "}};
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers[0].pattern");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers[1].use_regex");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"] = json{{"type", "Whitespace"}};
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.type");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"].erase(1);
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.pretokenizers[0].pattern.Regex");
}

TEST(TokenizerFormat, UnsupportedNormalizerAndModelOptions) {
  json j = minimal_tokenizer_json();
  j["normalizer"] = json{{"type", "NFKC"}};
  expect_error(j, ErrorCode::kUnsupported, "normalizer.type");
  j = minimal_tokenizer_json();
  j["model"]["byte_fallback"] = true;
  expect_error(j, ErrorCode::kUnsupported, "model.byte_fallback");
  j = minimal_tokenizer_json();
  j["model"]["dropout"] = 0.1;
  expect_error(j, ErrorCode::kUnsupported, "model.dropout");
  j = minimal_tokenizer_json();
  j["added_tokens"][0]["lstrip"] = true;
  expect_error(j, ErrorCode::kUnsupported, "added_tokens[0].lstrip");
}

TEST(TokenizerFormat, BadVocabAndMerges) {
  json j = minimal_tokenizer_json();
  j["model"]["merges"].push_back(json::array({"x", "zz"}));
  expect_error(j, ErrorCode::kFormat, "model.merges[2]");
  j = minimal_tokenizer_json();
  j["model"]["merges"].push_back(json::array({"b", "c"}));  // "bc" is not in the vocab
  expect_error(j, ErrorCode::kFormat, "model.merges[2]");
  j = minimal_tokenizer_json();
  j["model"]["merges"].push_back("a  b");
  expect_error(j, ErrorCode::kFormat, "model.merges[2]");
  j = minimal_tokenizer_json();
  j["model"]["merges"].push_back(42);
  expect_error(j, ErrorCode::kFormat, "model.merges[2]");
  j = minimal_tokenizer_json();
  j["model"]["vocab"]["dup"] = 256;
  expect_error(j, ErrorCode::kFormat, "model.vocab");
  j = minimal_tokenizer_json();
  j["model"]["vocab"]["neg"] = -3;
  expect_error(j, ErrorCode::kFormat, "model.vocab['neg']");
  j = minimal_tokenizer_json();
  j["model"]["vocab"].erase(text::byte_symbol(0x20));
  expect_error(j, ErrorCode::kFormat, "model.vocab");
}

TEST(TokenizerFormat, BadAddedTokens) {
  json j = minimal_tokenizer_json();
  j["added_tokens"][0]["id"] = 100;  // id 100 is the byte symbol 'd' in the vocab
  expect_error(j, ErrorCode::kFormat, "added_tokens[0].id");
  j = minimal_tokenizer_json();
  j["added_tokens"].push_back(json{{"id", 258}, {"content", "<|other|>"}, {"special", true}, {"normalized", false}});
  expect_error(j, ErrorCode::kFormat, "added_tokens[1].id");
  j = minimal_tokenizer_json();
  j["added_tokens"][0]["content"] = 5;
  expect_error(j, ErrorCode::kFormat, "added_tokens[0].content");
}

// The error of a file on disk names the path.
TEST(TokenizerFormat, ErrorsNameTheFileOnDisk) {
  TempDir dir("tokenizer_format");
  const auto path = dir.path() / "tokenizer.json";
  std::ofstream(path) << "not json at all";
  try {
    text::Tokenizer::from_file(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_EQ(e.file(), path.string());
  }
}

// Older files (Qwen2.5) store merges as "left right" strings; the ids must be identical.
TEST(TokenizerFormat, StringMergesGiveTheSameIdsAsPairMerges) {
  json j = read_json_file(bundled_model_dir() / "tokenizer.json");
  ASSERT_TRUE(j["model"]["merges"][0].is_array());
  json strings = json::array();
  for (const json& m : j["model"]["merges"]) strings.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  j["model"]["merges"] = strings;
  const text::Tokenizer t = text::Tokenizer::from_json(j.dump(), "string-merges");
  for (const ReferenceCase& c : read_reference_ids(test_data_dir() / "reference" / "tiny_tokenizer_ids.json")) {
    EXPECT_EQ(t.encode(c.text), c.ids) << c.text;
  }
}

// GPT-2's layout: a single ByteLevel pre-tokenizer with its own regex, where digit runs stay together.
TEST(TokenizerFormat, Gpt2ByteLevelPreTokenizer) {
  json j = minimal_tokenizer_json();
  j["pre_tokenizer"] = json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"]["vocab"]["12"] = 259;
  j["model"]["merges"].push_back(json::array({"1", "2"}));
  const text::Tokenizer gpt2 = text::Tokenizer::from_json(j.dump(), "gpt2");
  EXPECT_EQ(gpt2.encode("12"), (std::vector<std::int32_t>{259}));
  EXPECT_EQ(gpt2.decode(gpt2.encode("it's 12 ab!")), "it's 12 ab!");
  j["pre_tokenizer"].erase("add_prefix_space");  // tokenizers' default is true: a leading space is added
  expect_error(j, ErrorCode::kUnsupported, "pre_tokenizer.add_prefix_space");
}

}  // namespace
}  // namespace moeslim::testing
