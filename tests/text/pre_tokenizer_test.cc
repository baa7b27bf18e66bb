// The Split regex (ICU) and NFC on their own: the pieces the Qwen pattern must produce (spec §7.4).
#include <gtest/gtest.h>

#include "text/pre_tokenizer.h"
#include "tokenizer_fixture.h"

namespace moeslim::testing {
namespace {

using Pieces = std::vector<std::string>;

constexpr const char* kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Pieces split(const std::string& text) {
  static const text::RegexSplitter splitter(kQwenPattern);
  std::vector<std::string_view> views;
  splitter.split(text, views);
  return Pieces(views.begin(), views.end());
}

TEST(PreTokenizer, TokenizerFilesCarryThisPattern) {
  for (const auto& path : {qwen3_tokenizer_dir() / "tokenizer.json", bundled_model_dir() / "tokenizer.json"}) {
    EXPECT_EQ(read_json_file(path)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"], kQwenPattern) << path;
  }
}

TEST(PreTokenizer, BasicPieces) {
  EXPECT_EQ(split("Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split("I'm sure you'll"), (Pieces{"I", "'m", " sure", " you", "'ll"}));
  EXPECT_EQ(split("x  \n\n  y"), (Pieces{"x", "  \n\n", " ", " y"}));
  EXPECT_EQ(split("a!!\r\nb"), (Pieces{"a", "!!\r\n", "b"}));
  EXPECT_EQ(split(""), Pieces{});
}

TEST(PreTokenizer, DigitsSplitOneByOneIncludingOtherNumbers) {
  EXPECT_EQ(split("x2024"), (Pieces{"x", "2", "0", "2", "4"}));
  EXPECT_EQ(split("\u216B\u00BD\u00B2\u0661"), (Pieces{"\u216B", "\u00BD", "\u00B2", "\u0661"}));
}

TEST(PreTokenizer, WhitespaceIsUnicodeWhiteSpaceExactly) {
  // A whitespace run before text leaves its last character to the next piece.
  for (const char* ws : {" ", "\u3000", "\u00A0", "\u0085", "\u2028", "\u000B", "\u202F"}) {
    const std::string w = ws;
    EXPECT_EQ(split(w + w + "a"), (Pieces{w, w + "a"})) << "U+" << w;
  }
  // Not whitespace: a run of them is one symbol piece and the letter stands alone.
  for (const char* not_ws : {"\uFEFF", "\u180E", "\u001C", "\u001F", "\u200B"}) {
    const std::string s = not_ws;
    EXPECT_EQ(split(s + s + "a"), (Pieces{s + s, "a"})) << "U+" << s;
  }
}

TEST(PreTokenizer, ContractionsUseUnicodeCaseFolding) {
  EXPECT_EQ(split("it'\u017Fx"), (Pieces{"it", "'\u017F", "x"}));  // U+017F LONG S folds to 's'
  EXPECT_EQ(split("IT'S"), (Pieces{"IT", "'S"}));
  EXPECT_EQ(split("we'd've"), (Pieces{"we", "'d", "'ve"}));
}

TEST(PreTokenizer, LongRunsDoNotOverflowTheMatcher) {
  const std::string letters(200000, 'q');
  EXPECT_EQ(split(letters), Pieces{letters});
  const std::string spaces(200000, ' ');
  EXPECT_EQ(split("a" + spaces + "b"), (Pieces{"a", spaces.substr(1), " b"}));
  const std::string punctuation(200000, '!');
  EXPECT_EQ(split(punctuation + "\n"), Pieces{punctuation + "\n"});
  std::string mixed;
  for (int i = 0; i < 50000; ++i) mixed += " \n";
  EXPECT_EQ(split(mixed + "z").size(), 2u);
}

TEST(PreTokenizer, PiecesCoverSurrogatePairs) {
  // Astral code points are two UTF-16 units in ICU; the UTF-8 pieces must still line up.
  EXPECT_EQ(split("emoji \U0001F642\U0001F643 and \U00020000x"),
            (Pieces{"emoji", " \U0001F642\U0001F643", " and", " \U00020000x"}));
}

TEST(Nfc, ComposesAndLeavesNormalTextAlone) {
  std::string storage;
  EXPECT_EQ(text::normalize_nfc("e\u0301", storage), "\u00E9");
  EXPECT_EQ(text::normalize_nfc(">\u0338", storage), "\u226F");
  const std::string plain = "already NFC \u00E9";
  const std::string_view out = text::normalize_nfc(plain, storage);
  EXPECT_EQ(out, plain);
  EXPECT_EQ(out.data(), plain.data());  // no copy for normalised text
}

}  // namespace
}  // namespace moeslim::testing
