#include "pipeline/quant_pipeline.h"

#include <algorithm>
#include <future>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/process_memory.h"
#include "core/progress.h"
#include "eval/model_source.h"
#include "eval/perplexity.h"
#include "export/output_dir.h"
#include "formats/registry.h"
#include "formats/writer_calls.h"
#include "io/checkpoint.h"
#include "io/output_file.h"
#include "kernels/threading.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/calibration_data.h"
#include "pipeline/layer_quantizer.h"
#include "pipeline/resource_estimate.h"
#include "report/html_report.h"

namespace moeslim::pipeline {
namespace {

using Clock = PhaseTimes::Clock;
using model::ModuleId;

// A layer's parts into the format writer as the layer quantizer finishes them (in Hugging Face module order,
// LayerSink's). MLP linears left float are written as a weight only.
class WriterSink final : public LayerSink {
 public:
  explicit WriterSink(formats::FormatWriter& writer) : writer_(writer) {}
  void linear(quant::QuantizedLinear l) override {
    if (formats::written_as_float_tensor(l.module, l.scheme)) {
      writer_.add_float(model::hf_weight_name(l.module), l.weight);
    } else {
      writer_.add_linear(l);
    }
  }
  void norm(quant::NormTensors n) override { writer_.add_norm(n); }

 private:
  formats::FormatWriter& writer_;
};

EvaluationReport evaluate_output(const QuantRunOptions& o, const std::filesystem::path& written,
                                 const text::Tokenizer& tokenizer) {
  const eval::EvalData data = eval::load_eval_windows(o.eval_data, tokenizer, o.eval_window, 0);
  const auto quantized = eval::open_model_source(written, 0, model::FloatPrecision::kF32);
  const auto reference = eval::open_model_source(o.model_path, o.layer_count, model::FloatPrecision::kF32);
  std::unique_ptr<Progress> progress;
  const char* current = nullptr;
  eval::EvalOptions options;
  options.progress = [&](const char* phase, std::int64_t, std::int64_t total) {
    if (phase != current) {
      if (progress) progress->finish();
      progress = std::make_unique<Progress>("eval", static_cast<std::uint64_t>(total), phase);
      current = phase;
    }
    progress->advance(1);
  };
  const eval::EvalResult r = eval::evaluate(*quantized, reference.get(), data.windows, options);
  if (progress) progress->finish();
  return EvaluationReport{o.eval_data.string(),
                          r.predicted_tokens,
                          r.reference_perplexity,
                          r.perplexity,
                          r.perplexity / r.reference_perplexity - 1.0,
                          r.mean_kl,
                          r.top1_agreement,
                          r.router_layers,
                          r.router_total};
}

// The most token rows one forward chunk holds: `batch_size` of the longest prompts.
std::int64_t rows_per_chunk(const CalibrationSet& set) {
  std::int64_t longest = 0;
  for (const model::SequenceSpan& s : set.tokens.layout.sequences) longest = std::max(longest, s.length);
  return longest * set.batch_size;
}

// One run: setup, the layer loop, finish, the report. Not movable: the activation sets point into the
// calibration sets.
class QuantRun {
 public:
  QuantRun(const recipe::Recipe& recipe, const QuantRunOptions& o) : recipe_(recipe), o_(o) {}
  QuantRun(const QuantRun&) = delete;
  QuantRun& operator=(const QuantRun&) = delete;

  void setup();
  void quantize_layers();
  void finish();
  QuantReport report_and_commit();

 private:
  const recipe::Recipe& recipe_;
  const QuantRunOptions& o_;
  const Clock::time_point run_start_ = Clock::now();
  PhaseTimes times_;
  model::ModelConfig config_;
  std::int64_t input_layers_ = 0;
  std::optional<io::Checkpoint> checkpoint_;
  std::optional<text::Tokenizer> tokenizer_;
  std::int64_t batch_size_ = 1;
  bool include_padding_ = false;
  bool anti_pass_ = false;
  CalibrationSet anti_, calib_;
  std::optional<exporter::OutputDir> out_;
  ResourceEstimate need_;
  std::int64_t experts_per_group_ = 0;
  Tensor raw_embedding_;
  DType float_dtype_ = DType::kBF16;
  std::vector<io::PlannedTensor> planned_;  // what the writer will be given, in order
  std::unique_ptr<formats::FormatWriter> writer_;
  io::ShardedWriteSummary written_;
  ActivationSet anti_set_, calib_set_;
  LayerQuantizerOptions layer_options_;
  model::ForwardScratch scratch_;  // every layer's passes share these activation buffers
  std::vector<LayerReport> per_layer_;
};

void QuantRun::setup() {
  const auto start = PhaseTimes::mark();
  const quant::StepDefaults& d = recipe_.defaults;
  config_ = model::ModelConfig::load(o_.model_path);
  input_layers_ = config_.num_hidden_layers;
  if (o_.layer_count > 0) config_.limit_layers(o_.layer_count);
  checkpoint_.emplace(io::Checkpoint::open(o_.model_path));
  // The embedding's finiteness check (0.6 GB at Qwen3-30B-A3B's shapes) reads while the tokenizer loads (~0.7 s
  // for Qwen3's); an error of either comes out where it did when they ran one after the other.
  std::future<Tensor> embedding_read = std::async(std::launch::async, [this] {
    return model::read_checked(*checkpoint_, "model.embed_tokens.weight", {config_.vocab_size, config_.hidden_size});
  });
  tokenizer_.emplace(text::Tokenizer::from_model_dir_or_file(o_.model_path));
  // With float propagation (v1) one prompt per forward, without padding (docs/msmodelslim-algorithms.md §6.6);
  // otherwise batches as the W8A8 script does (§7.2).
  const bool v1_batches = d.propagation == quant::Propagation::kFloat;
  batch_size_ = v1_batches ? 1 : o_.batch_size;
  include_padding_ = !v1_batches && o_.stats_include_padding;
  anti_pass_ = d.statistics_on_anti_set && recipe_.observes();
  if (anti_pass_) {
    anti_ = load_calibration_set(o_.anti_dataset, *tokenizer_, batch_size_, include_padding_,
                                 config_.max_position_embeddings);
  }
  calib_ = load_calibration_set(o_.calib_dataset, *tokenizer_, batch_size_, include_padding_,
                                config_.max_position_embeddings);
  log_info("quant: recipe {} ({}); steps {}; {} of {} layers of {}; {}calibration set {} prompts ({} tokens), batch {}; "
           "{} threads",
           recipe_.name, recipe_.file.string(), fmt::join(recipe_.step_names(), ", "), config_.num_hidden_layers,
           input_layers_, o_.model_path.string(),
           anti_pass_ ? fmt::format("anti set {} prompts ({} tokens), ", anti_.prompts, anti_.tokens.layout.real_rows())
                      : std::string(),
           calib_.prompts, calib_.tokens.layout.real_rows(), batch_size_, kernels::num_threads());

  out_.emplace(o_.model_path, o_.save_path, o_.force);
  WorkloadShape work;
  work.calibration_tokens = calib_.tokens.layout.real_rows();
  work.anti_tokens = anti_pass_ ? anti_.tokens.layout.real_rows() : 0;
  work.rows_per_chunk = std::max(rows_per_chunk(calib_), anti_pass_ ? rows_per_chunk(anti_) : 0);
  work.v1 = recipe_.api == recipe::ApiVersion::kV1;
  work.threads = kernels::num_threads();
  const DType checkpoint_dtype = checkpoint_->info("model.embed_tokens.weight").dtype;
  work.float_bytes = static_cast<int>(dtype_size(checkpoint_dtype));
  experts_per_group_ = o_.experts_per_group > 0
                           ? std::min(o_.experts_per_group, std::max<std::int64_t>(1, config_.num_experts))
                           : default_experts_per_group(config_, work.float_bytes, work.threads);
  work.experts_per_group = experts_per_group_;
  const formats::OutputFormat& format = formats::for_recipe(recipe_);
  planned_ = formats::planned_output(format, config_, formats::linear_plan(recipe_),
                                     checkpoint_dtype == DType::kF16 ? DType::kF16 : DType::kBF16);
  work.output_tensor_bytes = formats::total_bytes(planned_);
  need_ = estimate_resources(recipe_, config_, work);
  log_info("quant: expected peak memory {:.2f} GiB (batch {}: up to {} token rows per forward; {} of {} experts at "
           "a time), output {:.2f} GiB",
           static_cast<double>(need_.peak_memory_bytes) / (1 << 30), batch_size_, work.rows_per_chunk,
           experts_per_group_, config_.num_experts,
           static_cast<double>(need_.output_bytes) / (1 << 30));
  if (!o_.skip_disk_space_check) check_free_disk_space(need_, out_->temp_path());

  raw_embedding_ = embedding_read.get();
  Tensor embedding = raw_embedding_;
  for (const auto& step : recipe_.steps) step->edit_embedding(config_, embedding);
  float_dtype_ = embedding.dtype() == DType::kF16 ? DType::kF16 : DType::kBF16;
  writer_ = format.open_writer(out_->temp_path(), float_dtype_);
  writer_->plan(std::move(planned_));
  writer_->add_float("model.embed_tokens.weight", embedding);

  anti_set_ = {anti_pass_ ? model::embed(embedding, anti_.tokens.ids) : Tensor(), &anti_.tokens.layout,
               anti_.batch_size};
  calib_set_ = {model::embed(embedding, calib_.tokens.ids), &calib_.tokens.layout, calib_.batch_size};
  // Written and embedded: the embedding's mapped pages (0.6 GB at Qwen3-30B-A3B's shapes) leave the resident
  // set until finish() needs them again (a tied lm_head), read back from the page cache or the file.
  checkpoint_->release("model.embed_tokens.weight");
  layer_options_.settings.include_padding = include_padding_;
  layer_options_.settings.float_dtype = float_dtype_;
  layer_options_.settings.search_rows = o_.search_rows;
  layer_options_.propagation = d.propagation;
  layer_options_.settings.float_precision = o_.float_precision;
  layer_options_.release_mapped = [this](const std::string& name) { checkpoint_->release(name); };
  layer_options_.settings.experts_per_group = experts_per_group_;
  layer_options_.settings.min_expert_tokens = recipe_.min_expert_tokens;
  layer_options_.scratch = &scratch_;
  times_.add("setup", start);
}

void QuantRun::quantize_layers() {
  Progress progress(fmt::format("quant ({} threads)", kernels::num_threads()),
                    static_cast<std::uint64_t>(config_.num_hidden_layers), "layers", 0.0);
  for (std::int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    throw_if_interrupted();
    auto start = PhaseTimes::mark();
    // With the layer's experts in one group the float passes read the layer whole, so the checked pages stay
    // mapped for them (mapping pages again costs ~2 µs each in a VM with shadow page tables: ~0.7 s per 30B
    // layer and pass, README's Performance section); with smaller groups each tensor's pages go back once
    // checked, to bound memory by the group.
    const bool one_group = layer_options_.settings.experts_in_one_group(config_);
    model::LayerTensors raw = model::read_layer_tensors(*checkpoint_, config_, l, /*release_checked=*/!one_group);
    std::vector<std::string> names;
    for (const auto& [name, tensor] : raw) names.push_back(name);
    times_.add("load", start);
    WriterSink sink(*writer_);
    const QuantizedLayer q = quantize_layer(config_, l, std::move(raw), recipe_.steps,
                                            anti_pass_ ? &anti_set_ : nullptr, calib_set_, layer_options_, times_,
                                            &sink);
    start = PhaseTimes::mark();
    for (const std::string& name : names) checkpoint_->release(name);
    times_.add("writing", start);
    per_layer_.push_back(
        LayerReport{l, q.relative_error, q.smoothing, q.expert_tokens, q.anti_expert_tokens, q.weight_fallbacks,
                    q.router_agreement});
    progress.set_detail(fmt::format("layer {} relative error {:.4f}", l, q.relative_error));
    progress.advance();
  }
  progress.finish();
}

// model.norm, lm_head, closing the shards, index, description, config.
void QuantRun::finish() {
  const auto start = PhaseTimes::mark();
  const Shape vocab_by_hidden{config_.vocab_size, config_.hidden_size};
  Tensor final_norm = model::read_checked(*checkpoint_, "model.norm.weight", {config_.hidden_size});
  Tensor lm_head = config_.tie_word_embeddings ? raw_embedding_
                                               : model::read_checked(*checkpoint_, "lm_head.weight", vocab_by_hidden);
  for (const auto& step : recipe_.steps) step->edit_head(config_, final_norm, lm_head);
  writer_->add_norm(quant::NormTensors{
      model::ModuleId::final_norm(), model::to_f32_vector(final_norm),
      recipe_.gives_norms_a_bias() ? Tensor::zeros(DType::kF32, {config_.hidden_size}) : Tensor()});
  writer_->add_float("lm_head.weight", lm_head);
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  if (const quant::LayerStep* rotate = recipe_.find_step("rotate")) metadata["rotation"] = rotate->settings();
  written_ = writer_->finish(o_.model_path, config_.num_hidden_layers < input_layers_ ? config_.num_hidden_layers : 0,
                            metadata)
                 .shards;
  times_.add("finish", start);
}

QuantReport QuantRun::report_and_commit() {
  QuantReport r;
  r.recipe = recipe_.name;
  r.recipe_file = recipe_.file.string();
  r.apiversion = recipe_.defaults.apiversion;
  r.step_settings = nlohmann::ordered_json::array();
  for (const auto& step : recipe_.steps) {
    r.steps.push_back(step->name());
    r.step_settings.push_back({{"step", step->name()}, {"settings", step->settings()}});
  }
  r.quant_type = o_.quant_type;
  r.model_type = o_.model_type;
  r.model_path = o_.model_path.string();
  r.format = formats::for_recipe(recipe_).name();
  r.rotation = recipe_.find_step("rotate") != nullptr ? "hadamard" : "none";
  r.smoothing = recipe_.find_step("m4") != nullptr            ? "m4"
                : recipe_.find_step("flex_smooth") != nullptr ? "flex_smooth"
                                                              : "none";
  r.anti_dataset = anti_pass_ ? o_.anti_dataset.string() : "";
  r.calib_dataset = o_.calib_dataset.string();
  r.float_precision = o_.float_precision == model::FloatPrecision::kF32 ? "f32" : "bf16";
  r.batch_size = batch_size_;
  r.stats_include_padding = include_padding_;
  r.layers = config_.num_hidden_layers;
  r.anti_tokens = anti_.tokens.layout.real_rows();
  r.calibration_tokens = calib_.tokens.layout.real_rows();
  r.starved_expert_min_tokens = recipe_.min_expert_tokens;
  r.per_layer = per_layer_;
  if (!o_.eval_data.empty()) {
    const auto start = PhaseTimes::mark();
    r.evaluation = evaluate_output(o_, out_->temp_path(), *tokenizer_);
    times_.add("evaluation", start);
  }
  r.timing_seconds = times_.seconds;
  r.gemm_work = times_.gemm_work;
  r.phase_spans = times_.spans;
  r.timing_seconds["total"] = std::chrono::duration<double>(Clock::now() - run_start_).count();
  r.expected_output_bytes = need_.output_bytes;
  r.output_tensors = written_.tensor_count;
  r.output_tensors_written_once = written_.tensors_written_once;
  r.expected_peak_memory_bytes = need_.peak_memory_bytes;
  r.threads = kernels::num_threads();
  r.experts_per_group = experts_per_group_;
  r.peak_rss_bytes = peak_rss_bytes();
  const nlohmann::ordered_json report_json = to_json(r);
  io::write_text_file(out_->temp_path() / "quant_report.json", report_json.dump(2) + "\n");
  // The page is made from the JSON alone. Should it fail to render (a bug), the model and the JSON still
  // stand, and `moeslim report` can make the page later: a warning, not a failed run.
  try {
    report::write_quant_report_html(report_json, out_->temp_path() / "quant_report.html");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kFormat) throw;
    log_warn("quant: quant_report.html not written ({}); `moeslim report {}` makes it", e.what(),
             o_.save_path.string());
  }
  out_->commit();
  return r;
}

}  // namespace

QuantResult run_quant(const recipe::Recipe& recipe, const QuantRunOptions& options) {
  QuantRun run(recipe, options);
  run.setup();
  run.quantize_layers();
  run.finish();
  return QuantResult{run.report_and_commit()};
}

}  // namespace moeslim::pipeline
