// `moeslim eval`: perplexity of a model on held-in text (and KL / top-1 agreement against a reference model),
// with the protocol of the PyTorch reference results in tests/data/reference.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/thread_option.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/model_source.h"
#include "eval/perplexity.h"
#include "io/checkpoint.h"
#include "kernels/threading.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

namespace moeslim::cli {
namespace {

struct EvalOptions {
  std::string model;
  std::string data;
  std::string reference;
  std::int64_t window = 256;
  std::int64_t layer_count = 0;
  std::int64_t max_documents = 0;
  int threads = 1;
  std::string precision = "f32";
  bool json = false;
};

int run_eval(const EvalOptions& o) {
  kernels::set_num_threads(o.threads);
  const model::FloatPrecision precision =
      o.precision == "bf16" ? model::FloatPrecision::kBF16 : model::FloatPrecision::kF32;

  const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(o.model);
  const eval::EvalData data = eval::load_eval_windows(o.data, tokenizer, o.window, o.max_documents);
  const model::TokenSet& windows = data.windows;

  // A float checkpoint or a quantized output directory (run with the runtime's integer arithmetic).
  const std::unique_ptr<model::LayerSource> source = eval::open_model_source(o.model, o.layer_count, precision);
  std::unique_ptr<model::LayerSource> ref_source;
  if (!o.reference.empty()) {
    ref_source = eval::open_model_source(o.reference, o.layer_count, model::FloatPrecision::kF32);
  }
  const model::ModelConfig& config = source->config();
  log_info("eval: {} documents, {} windows of up to {} tokens, {} layers", data.documents,
           windows.layout.sequences.size(), o.window, config.num_hidden_layers);
  std::unique_ptr<Progress> progress;
  const char* current_phase = nullptr;
  eval::EvalOptions options;
  options.progress = [&](const char* phase, std::int64_t done, std::int64_t total) {
    if (phase != current_phase) {
      if (progress) progress->finish();
      progress = std::make_unique<Progress>("eval", total, phase);
      current_phase = phase;
    }
    progress->advance(1);
    (void)done;
  };
  const eval::EvalResult r = eval::evaluate(*source, ref_source.get(), windows, options);
  if (progress) progress->finish();

  if (o.json) {
    std::string out = fmt::format("{{\"perplexity\": {:.10g}, \"tokens\": {}", r.perplexity, r.predicted_tokens);
    if (r.has_reference) {
      out += fmt::format(", \"reference_perplexity\": {:.10g}, \"mean_kl\": {:.10g}, \"top1_agreement\": {:.10g}",
                         r.reference_perplexity, r.mean_kl, r.top1_agreement);
      out += fmt::format(", \"router_agreement\": {{\"exact\": {:.10g}, \"mean_overlap\": {:.10g}, \"per_layer\": [",
                         r.router_total.exact, r.router_total.mean_overlap);
      for (std::size_t i = 0; i < r.router_layers.size(); ++i) {
        const auto& [layer, a] = r.router_layers[i];
        out += fmt::format("{}{{\"layer\": {}, \"exact\": {:.10g}, \"mean_overlap\": {:.10g}}}", i == 0 ? "" : ", ",
                           layer, a.exact, a.mean_overlap);
      }
      out += "]}";
    }
    std::printf("%s}\n", out.c_str());
  } else {
    std::printf("perplexity   %.6f over %lld predicted tokens\n", r.perplexity,
                static_cast<long long>(r.predicted_tokens));
    if (r.has_reference) {
      std::printf("reference    perplexity %.6f\nmean KL      %.6g nats (reference || model)\ntop-1 agree  %.4f\n",
                  r.reference_perplexity, r.mean_kl, r.top1_agreement);
      if (!r.router_layers.empty()) {
        std::printf("router agree %.4f of tokens keep their top-k experts, mean overlap %.4f (%zu MoE layers)\n",
                    r.router_total.exact, r.router_total.mean_overlap, r.router_layers.size());
        for (const auto& [layer, a] : r.router_layers) {
          std::printf("  layer %3lld  same experts %.4f  overlap %.4f\n", static_cast<long long>(layer), a.exact,
                      a.mean_overlap);
        }
      }
    }
  }
  return 0;
}

}  // namespace

CommandRunner register_eval(CLI::App& app) {
  auto opts = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand(
      "eval",
      "Perplexity of a model on held-in text: every document's tokens followed by <|endoftext|>, concatenated,\n"
      "cut into independent windows of --window tokens; exp(mean negative log-likelihood) of every token after the\n"
      "first of each window. With --reference, also the mean KL divergence of the model's next-token distribution\n"
      "from the reference's, their top-1 agreement, and router agreement: per MoE layer, the fraction of tokens\n"
      "whose top-k experts are the same set in both models (each run on its own hidden states) and the mean share\n"
      "of the k experts they have in common; a layer far below the others is where quantization moved the router.\n"
      "Example: moeslim eval --model models/tiny-qwen3-moe --data data/eval_valid.jsonl --json");
  sub->add_option("--model", opts->model,
                  "Model directory: a float Hugging Face checkpoint, or a quantized output in msModelSlim's or the "
                  "compressed-tensors format (evaluated with the runtime's arithmetic)")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--data", opts->data, "Evaluation text: JSONL with a \"text\" field, or a JSON array of strings")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--reference", opts->reference, "Model directory to compare with, usually the float model (mean KL, top-1 and router agreement)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--window", opts->window, "Tokens per window")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  sub->add_option("--layer_count", opts->layer_count, "Use only the first N decoder layers (0 = all)")
      ->capture_default_str();
  sub->add_option("--max_documents", opts->max_documents, "Use only the first N documents (0 = all)")
      ->capture_default_str();
  add_threads_option(*sub, opts->threads);
  sub->add_option("--precision", opts->precision,
                  "f32: float32 activations (matches a float32 reference); bf16: activations rounded to bf16 "
                  "for the weight GEMMs, faster")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  sub->add_flag("--json", opts->json, "Print one JSON object: {\"perplexity\": ..., \"tokens\": ...}");
  return [opts] { return run_eval(*opts); };
}

}  // namespace moeslim::cli
