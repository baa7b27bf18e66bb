// Python's fnmatch.fnmatchcase on strings: how recipes name the linears a quantization group claims
// (msModelSlim applies the same matcher to module names, so a group copied from its recipes claims the same
// linears here).
#pragma once

#include <string>

namespace moeslim {

// '*' any run (including '/' and '.'), '?' one character, '[abc]' / '[a-z]' / '[!a]' a class; no escapes.
// kInvalidArgument for an unterminated '['.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace moeslim
