// `moeslim tokenize`: token ids of a dataset's texts, exactly as Hugging Face's tokenizer gives them.
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

namespace moeslim::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string input;
  std::string output;
};

void write_ids(std::FILE* out, const std::vector<std::vector<std::int32_t>>& all_ids) {
  std::fputs("[", out);
  for (std::size_t i = 0; i < all_ids.size(); ++i) {
    std::fputs(i == 0 ? "\n  [" : ",\n  [", out);
    const auto& ids = all_ids[i];
    for (std::size_t j = 0; j < ids.size(); ++j) std::fprintf(out, j == 0 ? "%d" : ", %d", ids[j]);
    std::fputs("]", out);
  }
  std::fputs(all_ids.empty() ? "]\n" : "\n]\n", out);
}

int run_tokenize(const TokenizeOptions& o) {
  const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(o.tokenizer);
  const std::vector<std::string> texts = text::read_text_dataset(o.input);
  std::vector<std::vector<std::int32_t>> ids;
  ids.reserve(texts.size());
  std::size_t tokens = 0;
  for (const std::string& t : texts) {
    ids.push_back(tokenizer.encode(t));
    tokens += ids.back().size();
  }
  if (o.output.empty()) {
    write_ids(stdout, ids);
    if (std::fflush(stdout) != 0) throw Error(ErrorCode::kIo, "cannot write to standard output");
  } else {
    std::FILE* f = std::fopen(o.output.c_str(), "wb");
    if (f == nullptr) throw Error(ErrorCode::kIo, "cannot open for writing", o.output);
    write_ids(f, ids);
    const bool failed = std::ferror(f) != 0;
    if (std::fclose(f) != 0 || failed) throw Error(ErrorCode::kIo, "write failed (disk full?)", o.output);
  }
  log_info("tokenized {} texts into {} tokens", texts.size(), tokens);
  return 0;
}

}  // namespace

CommandRunner register_tokenize(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "tokenize",
      "Encode texts into token ids with a model's tokenizer.json, exactly as Hugging Face's `tokenizers` does\n"
      "(added tokens matched first, NFC, the Qwen pre-tokenizer regex, byte-level BPE). No BOS/EOS is added.\n"
      "Example: moeslim tokenize --tokenizer models/tiny-qwen3-moe --input data/qwen3-moe_calib_prompt_50.json");
  sub->add_option("--tokenizer", opts->tokenizer, "Model directory containing tokenizer.json, or a tokenizer.json")
      ->required();
  sub->add_option("--input", opts->input,
                  "Texts to encode: a JSON array of strings, or JSONL with one {\"text\": ...} object per line")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--output", opts->output,
                  "Write the JSON array of id arrays (one per input text, in order) here instead of stdout");
  return [opts] { return run_tokenize(*opts); };
}

}  // namespace moeslim::cli
