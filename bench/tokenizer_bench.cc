// Tokenizer throughput on the calibration prompts (both data/qwen3-moe_*_prompt_50.json files) for the real
// Qwen3 tokenizer and the tiny model's: load time of tokenizer.json, then encode passes over all prompts with
// the piece cache cleared before each pass (cold) and with it filled (warm). Prints a table; best of N runs.
//
// Usage: tokenizer_bench [repetitions]   (paths are the project's own copies, fixed at build time)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using moeslim::text::Tokenizer;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct Pass {
  double seconds;
  std::size_t tokens;
};

Pass encode_all(const Tokenizer& tokenizer, const std::vector<std::string>& texts) {
  const auto start = Clock::now();
  std::size_t tokens = 0;
  for (const std::string& t : texts) tokens += tokenizer.encode(t).size();
  return {seconds_since(start), tokens};
}

struct Result {
  const char* name;
  std::string path;
  int vocab_size;
  double load_seconds;
  Pass cold;
  Pass warm;
};

Result bench_tokenizer(const char* name, const fs::path& dir, const std::vector<std::string>& texts, int repetitions) {
  Result r{name, (dir / "tokenizer.json").string(), 0, 1e30, {1e30, 0}, {1e30, 0}};
  for (int i = 0; i < repetitions; ++i) {
    const auto start = Clock::now();
    const Tokenizer loaded = Tokenizer::from_model_dir_or_file(dir);
    r.load_seconds = std::min(r.load_seconds, seconds_since(start));
  }
  const Tokenizer tokenizer = Tokenizer::from_model_dir_or_file(dir);
  r.vocab_size = tokenizer.vocab_size();
  for (int i = 0; i < repetitions; ++i) {
    tokenizer.clear_cache();
    const Pass p = encode_all(tokenizer, texts);
    if (p.seconds < r.cold.seconds) r.cold = p;
  }
  encode_all(tokenizer, texts);  // fill the cache
  for (int i = 0; i < repetitions; ++i) {
    const Pass p = encode_all(tokenizer, texts);
    if (p.seconds < r.warm.seconds) r.warm = p;
  }
  return r;
}

void print_results(const std::vector<Result>& results, std::size_t bytes) {
  std::printf("%-9s %10s %8s  %s\n", "tokenizer", "load ms", "vocab", "file");
  for (const Result& r : results) std::printf("%-9s %10.1f %8d  %s\n", r.name, r.load_seconds * 1e3, r.vocab_size, r.path.c_str());
  std::printf("\n%-9s %-6s %10s %12s %10s %9s\n", "tokenizer", "cache", "MB/s", "tokens/s", "ms/pass", "tokens");
  for (const Result& r : results) {
    for (const auto& [mode, p] : {std::pair{"cold", r.cold}, std::pair{"warm", r.warm}}) {
      std::printf("%-9s %-6s %10.2f %12.0f %10.2f %9zu\n", r.name, mode, bytes / p.seconds / 1e6, p.tokens / p.seconds,
                  p.seconds * 1e3, p.tokens);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int repetitions = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const fs::path root = MOESLIM_SOURCE_DIR;
  try {
    std::vector<std::string> texts;
    for (const char* file : {"qwen3-moe_calib_prompt_50.json", "qwen3-moe_anti_prompt_50.json"}) {
      for (std::string& t : moeslim::text::read_text_dataset(root / "data" / file)) texts.push_back(std::move(t));
    }
    std::size_t bytes = 0;
    for (const std::string& t : texts) bytes += t.size();
    std::printf("%zu prompts, %.1f KB of UTF-8; best of %d runs; cold = piece cache cleared before each pass\n\n",
                texts.size(), bytes / 1e3, repetitions);
    const std::vector<Result> results = {
        bench_tokenizer("qwen3", root / "tests" / "data" / "tokenizers" / "qwen3", texts, repetitions),
        bench_tokenizer("tiny", root / "models" / "tiny-qwen3-moe", texts, repetitions),
    };
    print_results(results, bytes);
  } catch (const moeslim::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
