// glob_match: Python's fnmatch.fnmatchcase, the matcher msModelSlim applies to module names (mix_cfg keys in v0,
// include/exclude in v1), so a recipe copied from msModelSlim claims the same linears here.
#include <string>

#include "core/error.h"
#include "core/glob.h"

namespace moeslim {
namespace {

constexpr std::size_t kNone = std::string::npos;

// Index of the ']' closing the class that opens at `open`, or kNone. A ']' right after '[' or "[!" is a member,
// not the end (fnmatch: "[]]" matches "]").
std::size_t class_end(const std::string& p, std::size_t open) {
  std::size_t j = open + 1;
  if (j < p.size() && p[j] == '!') ++j;
  if (j < p.size() && p[j] == ']') ++j;
  while (j < p.size() && p[j] != ']') ++j;
  return j < p.size() ? j : kNone;
}

// Whether `c` is in the class p[open..end]. Ranges compare bytes; a reversed range ("[z-a]") matches nothing, as
// in Python ≥ 3.9. '^' is an ordinary member: only '!' negates.
bool class_matches(const std::string& p, std::size_t open, std::size_t end, char c) {
  std::size_t k = open + 1;
  const bool negated = p[k] == '!';
  if (negated) ++k;
  const auto uc = static_cast<unsigned char>(c);
  bool hit = false;
  while (k < end) {
    if (k + 2 < end && p[k + 1] == '-') {
      const auto lo = static_cast<unsigned char>(p[k]);
      const auto hi = static_cast<unsigned char>(p[k + 2]);
      hit = hit || (lo <= uc && uc <= hi);
      k += 3;
    } else {
      hit = hit || static_cast<unsigned char>(p[k]) == uc;
      ++k;
    }
  }
  return hit != negated;
}

// Python would read an unterminated '[' as a literal; a recipe author almost certainly meant a class, so it is
// rejected up front rather than silently matching nothing.
void check_pattern(const std::string& p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '[') continue;
    const std::size_t end = class_end(p, i);
    if (end == kNone) {
      throw Error(ErrorCode::kInvalidArgument,
                  "glob '" + p + "' has an unterminated '[' at offset " + std::to_string(i) +
                      "; a class is '[abc]', '[a-z]' or '[!abc]' and there are no escapes",
                  {}, p);
    }
    i = end;
  }
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) {
  check_pattern(pattern);
  const std::string& p = pattern;
  const std::string& t = text;
  std::size_t pi = 0;
  std::size_t ti = 0;
  // The last '*' seen and the text position it currently absorbs up to: on a mismatch the star takes one more
  // character and matching resumes after it. One backtrack point suffices because a later '*' subsumes an
  // earlier one.
  std::size_t star = kNone;
  std::size_t star_text = 0;
  while (ti < t.size()) {
    if (pi < p.size()) {
      const char ch = p[pi];
      if (ch == '*') {
        star = pi++;
        star_text = ti;
        continue;
      }
      std::size_t next = pi + 1;
      bool ok = false;
      if (ch == '?') {
        ok = true;
      } else if (ch == '[') {
        const std::size_t end = class_end(p, pi);
        ok = class_matches(p, pi, end, t[ti]);
        next = end + 1;
      } else {
        ok = ch == t[ti];
      }
      if (ok) {
        pi = next;
        ++ti;
        continue;
      }
    }
    if (star == kNone) return false;
    pi = star + 1;
    ti = ++star_text;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace moeslim
