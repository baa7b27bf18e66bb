#include "text/pre_tokenizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>
#include <unicode/utf16.h>

#include <cstdint>

#include "core/error.h"

namespace moeslim::text {
namespace {

const icu::Normalizer2& nfc_instance() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status) || nfc == nullptr) {
    throw Error(ErrorCode::kInternal, std::string("ICU has no NFC normalizer: ") + u_errorName(status));
  }
  return *nfc;
}

std::size_t utf8_length_of_code_point(UChar32 c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

}  // namespace

std::string_view normalize_nfc(std::string_view utf8, std::string& storage) {
  static const icu::Normalizer2& nfc = nfc_instance();  // owned by ICU, thread-safe, never freed
  UErrorCode status = U_ZERO_ERROR;
  const icu::StringPiece input(utf8.data(), static_cast<std::int32_t>(utf8.size()));
  if (nfc.isNormalizedUTF8(input, status) && U_SUCCESS(status)) return utf8;
  status = U_ZERO_ERROR;
  storage.clear();
  icu::StringByteSink<std::string> sink(&storage, static_cast<std::int32_t>(utf8.size()));
  nfc.normalizeUTF8(0, input, sink, nullptr, status);
  if (U_FAILURE(status)) throw Error(ErrorCode::kInternal, std::string("NFC normalisation failed: ") + u_errorName(status));
  return storage;
}

struct RegexSplitter::Impl {
  std::unique_ptr<icu::RegexPattern> pattern;
};

RegexSplitter::RegexSplitter(std::string_view pattern_utf8) : impl_(std::make_unique<Impl>()) {
  const icu::UnicodeString pattern =
      icu::UnicodeString::fromUTF8(icu::StringPiece(pattern_utf8.data(), static_cast<std::int32_t>(pattern_utf8.size())));
  UParseError parse_error{};
  UErrorCode status = U_ZERO_ERROR;
  impl_->pattern.reset(icu::RegexPattern::compile(pattern, 0, parse_error, status));
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::kFormat, "regex does not compile (" + std::string(u_errorName(status)) + " at offset " +
                                        std::to_string(parse_error.offset) + ")");
  }
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;

void RegexSplitter::split(std::string_view utf8, std::vector<std::string_view>& pieces) const {
  if (utf8.empty()) return;
  const icu::UnicodeString text =
      icu::UnicodeString::fromUTF8(icu::StringPiece(utf8.data(), static_cast<std::int32_t>(utf8.size())));
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(impl_->pattern->matcher(text, status));
  if (U_FAILURE(status)) throw Error(ErrorCode::kInternal, std::string("cannot create a regex matcher: ") + u_errorName(status));

  // ICU reports UTF-16 indices; walk both encodings forward together to turn them into UTF-8 offsets.
  std::int32_t u16_pos = 0;
  std::size_t u8_pos = 0;
  auto advance_to = [&](std::int32_t target) {
    while (u16_pos < target) {
      UChar32 c;
      U16_NEXT(text.getBuffer(), u16_pos, text.length(), c);
      u8_pos += utf8_length_of_code_point(c);
    }
    return u8_pos;
  };
  auto emit = [&](std::size_t from, std::size_t to) {
    if (to > from) pieces.push_back(utf8.substr(from, to - from));
  };

  std::size_t piece_start = 0;  // UTF-8 offset where the next gap (or match) begins
  while (matcher->find(status)) {
    const std::int32_t start = matcher->start(status);
    const std::int32_t end = matcher->end(status);
    if (U_FAILURE(status)) break;
    const std::size_t u8_start = advance_to(start);
    emit(piece_start, u8_start);  // the gap before this match
    const std::size_t u8_end = advance_to(end);
    emit(u8_start, u8_end);
    piece_start = u8_end;
  }
  if (U_FAILURE(status)) {
    // The only realistic failure is ICU's backtracking stack limit on a pathological input.
    throw Error(ErrorCode::kInvalidArgument,
                std::string("pre-tokenizer regex failed on this text: ") + u_errorName(status));
  }
  emit(piece_start, utf8.size());
}

}  // namespace moeslim::text
