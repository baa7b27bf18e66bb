#include "text/added_tokens.h"

#include <algorithm>

namespace moeslim::text {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (const AddedToken& t : tokens_) first_byte_[static_cast<unsigned char>(t.content[0])] = true;
}

int AddedTokenMatcher::longest_match_at(std::string_view text, std::size_t pos) const {
  if (!first_byte_[static_cast<unsigned char>(text[pos])]) return -1;
  const std::string_view rest = text.substr(pos);
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    if (rest.starts_with(tokens_[i].content)) return static_cast<int>(i);
  }
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, bool skip_special, std::vector<Segment>& out) const {
  std::size_t text_start = 0;  // start of the pending plain-text segment
  std::size_t pos = 0;
  while (pos < text.size()) {
    const int match = longest_match_at(text, pos);
    if (match < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[match];
    if (skip_special && token.special) {
      pos += token.content.size();  // stays part of the plain text
      continue;
    }
    if (pos > text_start) out.push_back(Segment{text.substr(text_start, pos - text_start), -1});
    out.push_back(Segment{text.substr(pos, token.content.size()), token.id});
    pos += token.content.size();
    text_start = pos;
  }
  if (text_start < text.size()) out.push_back(Segment{text.substr(text_start), -1});
}

}  // namespace moeslim::text
