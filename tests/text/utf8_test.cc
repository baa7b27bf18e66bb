// UTF-8 repair follows the maximal-subpart rule; the expected strings are Python's
// bytes.decode("utf-8", "replace") of the same input.
#include <gtest/gtest.h>

#include "text/byte_level.h"
#include "text/utf8.h"

namespace moeslim::testing {
namespace {

std::string repaired(std::string_view s) {
  std::string out;
  text::append_repaired_utf8(s, out);
  return out;
}

TEST(Utf8, ValidTextIsUnchanged) {
  for (const char* s : {"", "ascii", "\u00E9\u4E2D\U0001F642", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(text::is_valid_utf8(s)) << s;
    EXPECT_EQ(repaired(s), s);
  }
}

TEST(Utf8, InvalidSequencesBecomeOneReplacementPerMaximalSubpart) {
  const std::string r = "\uFFFD";
  EXPECT_EQ(repaired("a\xFF" "b\xC3"), "a" + r + "b" + r);
  EXPECT_EQ(repaired("\xED\xA0\x80"), r + r + r);          // encoded surrogate
  EXPECT_EQ(repaired("\xF0\x9F\x98"), r);                  // truncated 4-byte sequence
  EXPECT_EQ(repaired("\xE0\x80\x80"), r + r + r);          // overlong
  EXPECT_EQ(repaired("\xC0\xAF"), r + r);                  // overlong '/'
  EXPECT_EQ(repaired("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(repaired("\xE2\x82"), r);
  EXPECT_EQ(repaired("\xF0\x9F\x98\x80\x80"), "\U0001F600" + r);
  EXPECT_FALSE(text::is_valid_utf8("\x80"));
  std::string out;
  EXPECT_EQ(text::append_repaired_utf8("\xFF\xFE", out), 2u);
}

TEST(Utf8, AppendEncodesScalarValues) {
  std::string s;
  text::append_utf8(U'A', s);
  text::append_utf8(U'\u00E9', s);
  text::append_utf8(U'\u4E2D', s);
  text::append_utf8(U'\U0001F642', s);
  text::append_utf8(0xD800, s);  // a surrogate is not a scalar value
  EXPECT_EQ(s, "A\u00E9\u4E2D\U0001F642\uFFFD");
}

TEST(ByteLevel, Gpt2Table) {
  EXPECT_EQ(text::byte_to_unicode(' '), U'\u0120');   // 'Ġ'
  EXPECT_EQ(text::byte_to_unicode('\n'), U'\u010A');  // 'Ċ'
  EXPECT_EQ(text::byte_to_unicode('\t'), U'\u0109');  // 'ĉ'
  EXPECT_EQ(text::byte_to_unicode('A'), U'A');
  EXPECT_EQ(text::byte_to_unicode(0xAD), U'\u0143');
  EXPECT_EQ(text::byte_to_unicode(0xE9), U'\u00E9');
  for (int b = 0; b < 256; ++b) EXPECT_EQ(text::unicode_to_byte(text::byte_to_unicode(static_cast<std::uint8_t>(b))), b);
  EXPECT_EQ(text::unicode_to_byte(U' '), std::nullopt);
  EXPECT_EQ(text::unicode_to_byte(U'\u0144'), std::nullopt);
  EXPECT_EQ(text::byte_symbol(' '), "\u0120");
}

}  // namespace
}  // namespace moeslim::testing
