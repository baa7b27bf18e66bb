#include "text/tokenizer.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/byte_level.h"
#include "text/pre_tokenizer.h"
#include "text/tokenizer_files.h"
#include "text/utf8.h"

namespace moeslim::text {
namespace {

// Pieces at most this long are cached (longer ones are rare and would bloat the cache), and the cache is
// emptied when it reaches kCacheCapacity entries so that memory stays bounded on endless input.
constexpr std::size_t kMaxCachedPieceBytes = 128;
constexpr std::size_t kCacheCapacity = 1 << 16;

enum class IdKind : std::uint8_t { kUnused, kVocab, kAdded };

// Appends the bytes a BPE token stands for: each byte-level symbol maps back to its byte. A token with a
// character outside the table (impossible in a byte-level vocabulary) is kept as its own UTF-8, as
// tokenizers' ByteLevel decoder does.
void append_token_bytes(std::string_view token, std::string& out) {
  const std::size_t mark = out.size();
  for (std::size_t pos = 0; pos < token.size();) {
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence_length(token.substr(pos), &bad);
    std::optional<std::uint8_t> byte;
    if (n != 0) {
      char32_t cp = static_cast<unsigned char>(token[pos]) & (n == 1 ? 0x7Fu : 0xFFu >> (n + 1));
      for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(token[pos + k]) & 0x3Fu);
      byte = unicode_to_byte(cp);
    }
    if (!byte) {
      out.resize(mark);
      out.append(token);
      return;
    }
    out.push_back(static_cast<char>(*byte));
    pos += n;
  }
}

}  // namespace

struct Tokenizer::Impl {
  Impl(TokenizerDefinition def, std::string source_name)
      : source(std::move(source_name)), bpe(def.byte_ids), splitter(make_splitter(def, source)), nfc(def.nfc) {
    std::int32_t max_id = -1;
    for (const auto& [token, id] : def.vocab) max_id = std::max(max_id, id);
    for (const AddedToken& t : def.added_tokens) max_id = std::max(max_id, t.id);
    id_to_token.resize(static_cast<std::size_t>(max_id + 1));
    id_kind.assign(static_cast<std::size_t>(max_id + 1), IdKind::kUnused);
    for (const auto& [token, id] : def.vocab) {
      id_to_token[id] = token;
      id_kind[id] = IdKind::kVocab;
    }
    for (std::size_t rank = 0; rank < def.merges.size(); ++rank) {
      const MergeRule& m = def.merges[rank];
      bpe.add_merge(m.left, m.right, static_cast<std::int32_t>(rank), m.merged);
    }
    token_to_id = std::move(def.vocab);
    std::vector<AddedToken> raw;
    std::vector<AddedToken> normalized;
    for (AddedToken& t : def.added_tokens) {
      id_to_token[t.id] = t.content;
      id_kind[t.id] = IdKind::kAdded;
      token_to_id[t.content] = t.id;
      // Without a normalizer, "normalized" tokens see the same text; match them all on the raw text.
      (t.normalized && nfc ? normalized : raw).push_back(std::move(t));
    }
    raw_tokens = AddedTokenMatcher(std::move(raw));
    normalized_tokens = AddedTokenMatcher(std::move(normalized));
  }

  // A pattern Oniguruma accepts but ICU does not is outside what moeslim implements, hence kUnsupported.
  static RegexSplitter make_splitter(const TokenizerDefinition& def, const std::string& source) {
    try {
      return RegexSplitter(def.split_pattern);
    } catch (const Error& e) {
      throw Error(ErrorCode::kUnsupported, e.detail(), source, def.split_pattern_field);
    }
  }

  void encode_text(std::string_view text, std::vector<std::int32_t>& out, std::vector<std::string_view>& pieces) const;
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;
  void encode(std::string_view utf8, const EncodeOptions& options, std::vector<std::int32_t>& out) const;

  std::string source;
  TokenIdMap token_to_id;
  std::vector<std::string> id_to_token;
  std::vector<IdKind> id_kind;
  BpeModel bpe;
  AddedTokenMatcher raw_tokens;         // added tokens matched on the raw text (normalized: false)
  AddedTokenMatcher normalized_tokens;  // added tokens matched after NFC (normalized: true)
  RegexSplitter splitter;
  bool nfc;
  std::optional<std::int32_t> pad_id;
  std::string pad_token = "<|endoftext|>";  // for the error message when pad_id is absent
  std::optional<std::int32_t> eos_id;
  bool split_special_tokens = false;

  mutable std::atomic<bool> warned_invalid_utf8{false};
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>, TransparentStringHash, std::equal_to<>> cache;
};

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex);
    if (const auto it = cache.find(piece); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::size_t first = out.size();
  bpe.encode_piece(piece, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex);
    if (cache.size() >= kCacheCapacity) cache.clear();
    cache.emplace(std::string(piece), std::vector<std::int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
  }
}

// Steps 3-5 for normalised text without added tokens.
void Tokenizer::Impl::encode_text(std::string_view text, std::vector<std::int32_t>& out,
                                  std::vector<std::string_view>& pieces) const {
  pieces.clear();
  splitter.split(text, pieces);
  for (std::string_view piece : pieces) encode_piece(piece, out);
}

void Tokenizer::Impl::encode(std::string_view utf8, const EncodeOptions& options, std::vector<std::int32_t>& out) const {
  std::string repaired;
  if (!is_valid_utf8(utf8)) {
    const std::size_t replaced = append_repaired_utf8(utf8, repaired);
    // Warn once per tokenizer; a corpus with many broken texts would otherwise flood stderr.
    if (!warned_invalid_utf8.exchange(true)) {
      log_warn("tokenizer input is not valid UTF-8: {} invalid sequence(s) replaced by U+FFFD "
               "(later texts: logged at debug level)", replaced);
    } else {
      log_debug("tokenizer input is not valid UTF-8: {} invalid sequence(s) replaced by U+FFFD", replaced);
    }
    utf8 = repaired;
  }
  std::vector<Segment> segments;
  raw_tokens.split(utf8, options.split_special_tokens, segments);
  std::string normalized_storage;
  std::vector<Segment> normalized_segments;
  std::vector<std::string_view> pieces;
  for (const Segment& segment : segments) {
    if (segment.is_token()) {
      out.push_back(segment.token_id);
      continue;
    }
    const std::string_view text = nfc ? normalize_nfc(segment.text, normalized_storage) : segment.text;
    if (normalized_tokens.empty()) {
      encode_text(text, out, pieces);
      continue;
    }
    normalized_segments.clear();
    normalized_tokens.split(text, options.split_special_tokens, normalized_segments);
    for (const Segment& inner : normalized_segments) {
      if (inner.is_token()) {
        out.push_back(inner.token_id);
      } else {
        encode_text(inner.text, out, pieces);
      }
    }
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json_text, const std::string& name) {
  auto impl = std::make_unique<Impl>(parse_tokenizer_json(tokenizer_json_text, name), name);
  if (const auto it = impl->token_to_id.find(impl->pad_token); it != impl->token_to_id.end()) impl->pad_id = it->second;
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  return from_json(read_file_text(tokenizer_json), tokenizer_json.string());
}

Tokenizer Tokenizer::from_model_dir_or_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(ErrorCode::kNotFound, "no such file or directory", path.string());
  const bool is_dir = std::filesystem::is_directory(path, ec);
  const std::filesystem::path json_path = is_dir ? path / "tokenizer.json" : path;
  const std::filesystem::path config_path = (is_dir ? path : path.parent_path()) / "tokenizer_config.json";
  Tokenizer tokenizer = from_file(json_path);
  if (!std::filesystem::exists(config_path, ec)) return tokenizer;

  const std::string config_name = config_path.string();
  const TokenizerConfig config = parse_tokenizer_config(read_file_text(config_path), config_name);
  Impl& impl = *tokenizer.impl_;
  auto resolve = [&](const std::string& token, const char* field) {
    const auto id = tokenizer.token_to_id(token);
    if (!id) throw Error(ErrorCode::kFormat, "token '" + token + "' is not in " + json_path.string(), config_name, field);
    return *id;
  };
  if (config.pad_token) {
    impl.pad_token = *config.pad_token;
    impl.pad_id = resolve(*config.pad_token, "pad_token");
  }
  if (config.eos_token) impl.eos_id = resolve(*config.eos_token, "eos_token");
  if (config.split_special_tokens) impl.split_special_tokens = *config.split_special_tokens;
  return tokenizer;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view utf8) const {
  return encode(utf8, EncodeOptions{impl_->split_special_tokens});
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view utf8, const EncodeOptions& options) const {
  std::vector<std::int32_t> ids;
  ids.reserve(utf8.size() / 3 + 4);
  impl_->encode(utf8, options, ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string bytes;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    const IdKind kind = id >= 0 && static_cast<std::size_t>(id) < impl_->id_kind.size() ? impl_->id_kind[id] : IdKind::kUnused;
    if (kind == IdKind::kUnused) {
      throw Error(ErrorCode::kInvalidArgument, "unknown token id " + std::to_string(id) + " for " + impl_->source,
                  "", "ids[" + std::to_string(i) + "]");
    }
    const std::string& token = impl_->id_to_token[id];
    if (kind == IdKind::kAdded) {
      bytes += token;
      continue;
    }
    append_token_bytes(token, bytes);
  }
  if (is_valid_utf8(bytes)) return bytes;
  std::string repaired;
  append_repaired_utf8(bytes, repaired);
  return repaired;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->token_to_id.find(token);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_kind.size() || impl_->id_kind[id] == IdKind::kUnused) {
    return std::nullopt;
  }
  return impl_->id_to_token[id];
}

std::int32_t Tokenizer::vocab_size() const { return static_cast<std::int32_t>(impl_->id_kind.size()); }

std::int32_t Tokenizer::pad_id() const {
  if (!impl_->pad_id) {
    throw Error(ErrorCode::kNotFound, "no pad token: '" + impl_->pad_token + "' is not in the vocabulary", impl_->source,
                "pad_token");
  }
  return *impl_->pad_id;
}

std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }

bool Tokenizer::split_special_tokens() const { return impl_->split_special_tokens; }
void Tokenizer::set_split_special_tokens(bool split) { impl_->split_special_tokens = split; }

void Tokenizer::clear_cache() const {
  std::lock_guard lock(impl_->cache_mutex);
  impl_->cache.clear();
}

std::size_t Tokenizer::cache_size() const {
  std::lock_guard lock(impl_->cache_mutex);
  return impl_->cache.size();
}

const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace moeslim::text
