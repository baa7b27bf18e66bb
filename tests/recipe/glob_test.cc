// glob_match against Python's fnmatch.fnmatchcase (the expected values are what Python returns).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/glob.h"

namespace moeslim::recipe {
namespace {

TEST(GlobMatch, Star) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "model.layers.0.mlp.gate"));
  EXPECT_TRUE(glob_match("*self_attn*", "model.layers.3.self_attn.q_proj"));
  EXPECT_TRUE(glob_match("*.mlp.*", "model.layers.3.mlp.experts.7.up_proj"));
  EXPECT_TRUE(glob_match("*.mlp.gate", "model.layers.12.mlp.gate"));
  EXPECT_FALSE(glob_match("*.mlp.gate", "model.layers.12.mlp.gate_proj"));
  EXPECT_TRUE(glob_match("model.*.q_proj", "model.layers.3.self_attn.q_proj"));  // '*' spans '.'
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));  // needs backtracking
  EXPECT_TRUE(glob_match("**a", "bba"));
  EXPECT_FALSE(glob_match("a*b", "aXc"));
  EXPECT_TRUE(glob_match("*model.layers.41.mlp.experts*", "model.layers.41.mlp.experts.0.down_proj"));
  EXPECT_FALSE(glob_match("*model.layers.41.mlp.experts*", "model.layers.141.mlp.gate"));
  EXPECT_FALSE(glob_match("model.layers.4.*", "model.layers.41.mlp.experts.0.up_proj"));
}

TEST(GlobMatch, QuestionMark) {
  EXPECT_TRUE(glob_match("layer.?", "layer.7"));
  EXPECT_FALSE(glob_match("layer.?", "layer.17"));
  EXPECT_FALSE(glob_match("layer.?", "layer."));
  EXPECT_TRUE(glob_match("??", ".."));
}

TEST(GlobMatch, Classes) {
  EXPECT_TRUE(glob_match("[qkv]_proj", "k_proj"));
  EXPECT_FALSE(glob_match("[qkv]_proj", "o_proj"));
  EXPECT_TRUE(glob_match("layers.[0-3].x", "layers.2.x"));
  EXPECT_FALSE(glob_match("layers.[0-3].x", "layers.5.x"));
  EXPECT_TRUE(glob_match("layers.4[1-7].*", "layers.45.mlp"));
  EXPECT_FALSE(glob_match("layers.4[1-7].*", "layers.40.mlp"));
  EXPECT_TRUE(glob_match("[!o]_proj", "q_proj"));
  EXPECT_FALSE(glob_match("[!o]_proj", "o_proj"));
  EXPECT_FALSE(glob_match("[!a-z]", "m"));
  EXPECT_TRUE(glob_match("[!a-z]", "7"));
  EXPECT_TRUE(glob_match("[]]", "]"));    // ']' first is a member
  EXPECT_TRUE(glob_match("[!]]", "a"));
  EXPECT_FALSE(glob_match("[!]]", "]"));
  EXPECT_TRUE(glob_match("[a-]", "-"));   // trailing '-' is a member
  EXPECT_TRUE(glob_match("[^a]", "^"));   // '^' is not negation in fnmatch
  EXPECT_FALSE(glob_match("[z-a]", "m"));  // a reversed range is empty
  EXPECT_TRUE(glob_match("*[0-9]", "x.12"));
}

TEST(GlobMatch, NoMatchAndLiteralDot) {
  EXPECT_FALSE(glob_match("abc", "abd"));
  EXPECT_FALSE(glob_match("abc", "abcd"));
  EXPECT_FALSE(glob_match("abcd", "abc"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_FALSE(glob_match("a.c", "abc"));  // '.' is an ordinary character, not "any"
  EXPECT_TRUE(glob_match("a.c", "a.c"));
  EXPECT_FALSE(glob_match("Q_proj", "q_proj"));  // case-sensitive
}

TEST(GlobMatch, UnterminatedClassIsAnError) {
  for (const char* p : {"[abc", "layers.[0-9*", "*[!", "[", "ok[]"}) {
    try {
      glob_match(p, "anything");
      ADD_FAILURE() << p << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << p;
      EXPECT_NE(e.detail().find("unterminated '['"), std::string::npos) << e.what();
    }
  }
  // Checked even when matching would stop before reaching the class.
  EXPECT_THROW(glob_match("x[a", "y"), Error);
}

}  // namespace
}  // namespace moeslim::recipe
