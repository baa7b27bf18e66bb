// Perplexity (and, against a reference model, mean KL divergence and top-1 agreement) of a model on text,
// with the protocol of the PyTorch reference (tests/data/reference): every document's ids followed by
// <|endoftext|>, concatenated, cut into consecutive windows of `window` tokens (the last may be shorter; windows
// under 2 tokens dropped), each window an independent sequence starting at position 0; the mean negative
// log-likelihood of tokens 1..len-1 of every window given those before it; perplexity = exp(mean).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <utility>
#include <vector>

#include "eval/router_agreement.h"
#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace moeslim::eval {

model::TokenSet make_eval_windows(const std::vector<std::vector<std::int32_t>>& documents, std::int32_t separator_id,
                                  std::int64_t window);

// Reads an evaluation text file (JSONL with a "text" field, or a JSON array of strings), keeps the first
// max_documents (0 = all), tokenizes each and joins them with <|endoftext|> into windows of `window` tokens.
struct EvalData {
  model::TokenSet windows;
  std::int64_t documents = 0;
};
EvalData load_eval_windows(const std::filesystem::path& file, const text::Tokenizer& tokenizer, std::int64_t window,
                           std::int64_t max_documents);

struct EvalResult {
  double perplexity = 0;
  double mean_nll = 0;
  std::int64_t predicted_tokens = 0;
  // Only with a reference model: mean over predicted tokens of KL(reference || model) in nats, and the
  // fraction of tokens where both models' argmax agree.
  bool has_reference = false;
  double mean_kl = 0;
  double top1_agreement = 0;
  double reference_perplexity = 0;
  // Only with a reference model: per MoE layer (ascending), how often the model's router picks the reference's
  // experts for the same token, each model fed its own hidden states (router_agreement.h); and over all layers.
  std::vector<std::pair<std::int64_t, RouterAgreement>> router_layers;
  RouterAgreement router_total;
};

struct EvalOptions {
  std::int64_t max_rows_per_chunk = 4096;
  std::function<void(const char* phase, std::int64_t done, std::int64_t total)> progress;
};

// Runs `model` (and `reference`, if not null) layer-major over the windows and scores every predicted token.
EvalResult evaluate(model::LayerSource& model, model::LayerSource* reference, const model::TokenSet& windows,
                    const EvalOptions& options);

}  // namespace moeslim::eval
