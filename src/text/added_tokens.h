// Added tokens (tokenizer.json "added_tokens": <|im_end|>, <think>, ...) are found in the text before BPE and
// emitted as their own ids. Matching is leftmost-longest and non-overlapping, like the Aho-Corasick automaton
// (MatchKind::LeftmostLongest) of Hugging Face tokenizers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeslim::text {

struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false;     // special tokens are the ones split_special_tokens turns back into plain text
  bool normalized = false;  // matched on the NFC-normalised text instead of the raw text
};

// A piece of the input: either text still to be tokenized, or an added token's id.
struct Segment {
  std::string_view text;
  std::int32_t token_id = -1;  // >= 0: an added token (text then spans its occurrence)
  bool is_token() const { return token_id >= 0; }
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }

  // Splits `text` into segments, appended to `out`; empty text segments are left out. With
  // `skip_special`, a special token found at a position is kept as text (scanning resumes after it, so a
  // shorter token inside it is not matched either — tokenizers' encode_special_tokens behaves the same).
  void split(std::string_view text, bool skip_special, std::vector<Segment>& out) const;

 private:
  // Index into tokens_ of the longest token starting at text[pos], or -1.
  int longest_match_at(std::string_view text, std::size_t pos) const;

  std::vector<AddedToken> tokens_;  // longest first, so the first hit at a position is the longest
  bool first_byte_[256] = {};       // cheap filter: most positions cannot start any token
};

}  // namespace moeslim::text
