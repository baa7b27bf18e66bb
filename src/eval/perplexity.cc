#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/interrupt.h"
#include "text/dataset.h"

namespace moeslim::eval {

EvalData load_eval_windows(const std::filesystem::path& file, const text::Tokenizer& tokenizer, std::int64_t window,
                           std::int64_t max_documents) {
  std::vector<std::string> texts = text::read_text_dataset(file);
  if (max_documents > 0 && static_cast<std::int64_t>(texts.size()) > max_documents) {
    texts.resize(static_cast<std::size_t>(max_documents));
  }
  std::vector<std::vector<std::int32_t>> documents;
  for (const auto& t : texts) documents.push_back(tokenizer.encode(t));
  const auto separator = tokenizer.token_to_id("<|endoftext|>");
  if (!separator) {
    throw Error(ErrorCode::kNotFound, "the tokenizer has no <|endoftext|> token to separate documents", file.string());
  }
  return EvalData{make_eval_windows(documents, *separator, window), static_cast<std::int64_t>(documents.size())};
}

model::TokenSet make_eval_windows(const std::vector<std::vector<std::int32_t>>& documents, std::int32_t separator_id,
                                  std::int64_t window) {
  if (window < 2) throw Error(ErrorCode::kInvalidArgument, "must be at least 2", "", "--window");
  std::vector<std::int32_t> stream;
  for (const auto& doc : documents) {
    stream.insert(stream.end(), doc.begin(), doc.end());
    stream.push_back(separator_id);
  }
  model::TokenSet set;
  for (std::size_t begin = 0; begin < stream.size(); begin += static_cast<std::size_t>(window)) {
    const std::size_t end = std::min(stream.size(), begin + static_cast<std::size_t>(window));
    if (end - begin < 2) break;
    set.ids.insert(set.ids.end(), stream.begin() + static_cast<std::ptrdiff_t>(begin),
                   stream.begin() + static_cast<std::ptrdiff_t>(end));
    set.layout.add_sequence(static_cast<std::int64_t>(end - begin));
  }
  return set;
}

namespace {

// log-softmax of one row into `out` (double for the accumulation that follows).
void log_softmax(const float* logits, std::int64_t n, std::vector<double>& out) {
  out.resize(static_cast<std::size_t>(n));
  double max = logits[0];
  for (std::int64_t i = 1; i < n; ++i) max = std::max(max, static_cast<double>(logits[i]));
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = max + std::log(sum);
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(logits[i]) - log_z;
}

std::int64_t argmax(const float* x, std::int64_t n) {
  return std::max_element(x, x + n) - x;
}

}  // namespace

EvalResult evaluate(model::LayerSource& model, model::LayerSource* reference, const model::TokenSet& windows,
                    const EvalOptions& options) {
  const model::ModelConfig& config = model.config();
  model::RunOptions run;
  run.max_rows_per_chunk = options.max_rows_per_chunk;
  if (options.progress) {
    run.on_layer_done = [&](std::int64_t done, std::int64_t total) { options.progress("layers", done, total); };
  }
  // With a reference, both runs record their routing (the expert sets only: small next to the hidden states).
  RoutingRecorder routes, ref_routes;
  if (reference != nullptr) run.observer = &routes;
  const Tensor hidden = model::run_layers(model, windows, run);
  Tensor ref_hidden;
  if (reference != nullptr) {
    run.observer = &ref_routes;
    if (reference->config().vocab_size != config.vocab_size) {
      throw Error(ErrorCode::kInvalidArgument, "reference model has a different vocabulary size", "", "--reference");
    }
    if (options.progress) {
      run.on_layer_done = [&](std::int64_t done, std::int64_t total) {
        options.progress("reference layers", done, total);
      };
    }
    ref_hidden = model::run_layers(*reference, windows, run);
  }

  const Tensor norm = model.final_norm();
  const std::unique_ptr<model::Linear> head = model.lm_head();
  Tensor ref_norm;
  std::unique_ptr<model::Linear> ref_head;
  if (reference != nullptr) {
    ref_norm = reference->final_norm();
    ref_head = reference->lm_head();
  }

  const std::int64_t vocab = config.vocab_size;
  double nll_sum = 0;
  double ref_nll_sum = 0;
  double kl_sum = 0;
  std::int64_t agree = 0;
  std::int64_t predicted = 0;
  std::vector<double> logp;
  std::vector<double> ref_logp;
  std::int64_t done_sequences = 0;
  for (const model::SequenceSpan& s : windows.layout.sequences) {
    throw_if_interrupted();
    const Tensor logits = model::compute_logits(config, norm, *head, hidden, s.begin, s.length - 1);
    Tensor ref_logits;
    if (reference != nullptr) {
      ref_logits = model::compute_logits(reference->config(), ref_norm, *ref_head, ref_hidden, s.begin, s.length - 1);
    }
    for (std::int64_t i = 0; i + 1 < s.length; ++i) {
      const float* row = logits.data<float>() + i * vocab;
      const auto target = static_cast<std::size_t>(windows.ids[static_cast<std::size_t>(s.begin + i + 1)]);
      log_softmax(row, vocab, logp);
      nll_sum -= logp[target];
      if (reference != nullptr) {
        const float* ref_row = ref_logits.data<float>() + i * vocab;
        log_softmax(ref_row, vocab, ref_logp);
        ref_nll_sum -= ref_logp[target];
        double kl = 0;
        for (std::int64_t v = 0; v < vocab; ++v) {
          const double lp = ref_logp[static_cast<std::size_t>(v)];
          kl += std::exp(lp) * (lp - logp[static_cast<std::size_t>(v)]);
        }
        kl_sum += kl;
        agree += argmax(row, vocab) == argmax(ref_row, vocab) ? 1 : 0;
      }
      ++predicted;
    }
    ++done_sequences;
    if (options.progress) {
      options.progress("scoring windows", done_sequences, static_cast<std::int64_t>(windows.layout.sequences.size()));
    }
  }
  EvalResult r;
  r.predicted_tokens = predicted;
  if (predicted == 0) throw Error(ErrorCode::kInvalidArgument, "evaluation text yields no token to predict");
  r.mean_nll = nll_sum / static_cast<double>(predicted);
  r.perplexity = std::exp(r.mean_nll);
  if (reference != nullptr) {
    r.has_reference = true;
    r.mean_kl = kl_sum / static_cast<double>(predicted);
    r.top1_agreement = static_cast<double>(agree) / static_cast<double>(predicted);
    r.reference_perplexity = std::exp(ref_nll_sum / static_cast<double>(predicted));
    std::vector<RouterAgreement> layers;
    for (const std::int64_t layer : routes.layers()) {
      r.router_layers.emplace_back(layer, router_agreement(routes, ref_routes, layer));
      layers.push_back(r.router_layers.back().second);
    }
    r.router_total = combined(layers);
  }
  return r;
}

}  // namespace moeslim::eval
