#include "pipeline/quant_pipeline.h"

#include <algorithm>
#include <fstream>
#include <optional>

#include <fmt/core.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/process_memory.h"
#include "core/progress.h"
#include "eval/model_source.h"
#include "eval/perplexity.h"
#include "export/output_dir.h"
#include "formats/registry.h"
#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "pipeline/calibration_data.h"
#include "pipeline/resource_estimate.h"
#include "pipeline/v0_layer.h"
#include "pipeline/v1_layer.h"
#include "quant/rotation.h"

namespace moeslim::pipeline {
namespace {

using Clock = PhaseTimes::Clock;
using nlohmann::ordered_json;

// Hugging Face module order within a layer: q, k, v, o, q_norm, k_norm, router and experts (or dense MLP),
// input_layernorm, post_attention_layernorm.
void write_layer(formats::FormatWriter& writer, const QuantizedLayer& layer) {
  for (std::size_t i = 0; i < 4; ++i) writer.add_linear(layer.linears[i]);
  writer.add_norm(layer.norms[0]);
  writer.add_norm(layer.norms[1]);
  for (std::size_t i = 4; i < layer.linears.size(); ++i) {
    const quant::QuantizedLinear& l = layer.linears[i];
    if (l.scheme == quant::QuantScheme::kFloat) {
      writer.add_float(l.name + ".weight", l.weight);
    } else {
      writer.add_linear(l);
    }
  }
  writer.add_norm(layer.norms[2]);
  writer.add_norm(layer.norms[3]);
}

ordered_json layer_report(std::int64_t l, const QuantizedLayer& q) {
  ordered_json r = {{"layer", l}, {"relative_error", q.relative_error}};
  if (!q.smoothing.empty()) r["smoothing"] = q.smoothing;
  if (!q.expert_tokens.empty()) {
    ordered_json without = ordered_json::array();
    for (std::size_t e = 0; e < q.expert_tokens.size(); ++e) {
      if (q.expert_tokens[e] == 0) without.push_back(e);
    }
    r["expert_tokens"] = q.expert_tokens;
    r["experts_without_tokens"] = without;
  }
  return r;
}

ordered_json evaluate_output(const QuantRunOptions& o, const std::filesystem::path& written,
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
  return ordered_json{{"data", o.eval_data.string()},
                      {"tokens", r.predicted_tokens},
                      {"float_perplexity", r.reference_perplexity},
                      {"quantized_perplexity", r.perplexity},
                      {"perplexity_change", r.perplexity / r.reference_perplexity - 1.0},
                      {"mean_kl", r.mean_kl},
                      {"top1_agreement", r.top1_agreement}};
}

// The most token rows one forward chunk holds: `batch_size` of the longest prompts.
std::int64_t rows_per_chunk(const CalibrationSet& set) {
  std::int64_t longest = 0;
  for (const model::SequenceSpan& s : set.tokens.layout.sequences) longest = std::max(longest, s.length);
  return longest * set.batch_size;
}

}  // namespace

QuantResult run_quant(const recipe::Recipe& recipe, const QuantRunOptions& o) {
  const auto run_start = Clock::now();
  PhaseTimes times;
  auto start = Clock::now();
  const bool v1 = recipe.api == recipe::ApiVersion::kV1;

  model::ModelConfig config = model::ModelConfig::load(o.model_path);
  const std::int64_t input_layers = config.num_hidden_layers;
  if (o.layer_count > 0) config.limit_layers(o.layer_count);
  const io::Checkpoint checkpoint = io::Checkpoint::open(o.model_path);
  const text::Tokenizer tokenizer = text::Tokenizer::from_model_dir_or_file(o.model_path);
  // v1 feeds one prompt per forward, without padding (§6.6); v0 batches as the script does (§7.2).
  const std::int64_t batch_size = v1 ? 1 : o.batch_size;
  const bool include_padding = !v1 && o.stats_include_padding;
  const bool anti_pass = !v1 && recipe.smooth.has_value();
  CalibrationSet anti;
  if (anti_pass) {
    anti = load_calibration_set(o.anti_dataset, tokenizer, batch_size, include_padding, config.max_position_embeddings);
  }
  const CalibrationSet calib =
      load_calibration_set(o.calib_dataset, tokenizer, batch_size, include_padding, config.max_position_embeddings);
  log_info("quant: recipe {} ({}); {} of {} layers of {}; {}calibration set {} prompts ({} tokens), batch {}",
           recipe.name, recipe.file.string(), config.num_hidden_layers, input_layers, o.model_path.string(),
           anti_pass ? fmt::format("anti set {} prompts ({} tokens), ", anti.prompts, anti.tokens.layout.real_rows())
                     : std::string(),
           calib.prompts, calib.tokens.layout.real_rows(), batch_size);

  // Rotation: the rotated model is an ordinary checkpoint (spec §5.3), so everything downstream (statistics,
  // smoothing, calibration, the written float tensors) sees the rotated weights; each tensor is rotated once,
  // when it streams by.
  std::optional<quant::Rotation> rotation;
  if (recipe.rotate) rotation = quant::Rotation::for_config(config);

  exporter::OutputDir out(o.model_path, o.save_path, o.force);
  WorkloadShape work;
  work.calibration_tokens = calib.tokens.layout.real_rows();
  work.anti_tokens = anti_pass ? anti.tokens.layout.real_rows() : 0;
  work.rows_per_chunk = std::max(rows_per_chunk(calib), anti_pass ? rows_per_chunk(anti) : 0);
  work.v1 = v1;
  work.float_bytes = static_cast<int>(dtype_size(checkpoint.info("model.embed_tokens.weight").dtype));
  const bool f16 = checkpoint.info("model.embed_tokens.weight").dtype == DType::kF16;
  work.output_tensor_bytes = formats::for_recipe(recipe).estimate_bytes(config, formats::linear_plan(recipe),
                                                                        f16 ? DType::kF16 : DType::kBF16);
  const ResourceEstimate need = estimate_resources(recipe, config, work);
  log_info("quant: expected peak memory {:.2f} GiB (batch {}: up to {} token rows per forward), output {:.2f} GiB",
           static_cast<double>(need.peak_memory_bytes) / (1 << 30), batch_size, work.rows_per_chunk,
           static_cast<double>(need.output_bytes) / (1 << 30));
  if (!o.skip_disk_space_check) check_free_disk_space(need, out.temp_path());
  const Shape vocab_by_hidden{config.vocab_size, config.hidden_size};
  const Tensor raw_embedding = model::read_checked(checkpoint, "model.embed_tokens.weight", vocab_by_hidden);
  const Tensor embedding = rotation ? quant::rotate_embedding(raw_embedding, *rotation) : raw_embedding;
  const DType float_dtype = embedding.dtype() == DType::kF16 ? DType::kF16 : DType::kBF16;
  const std::unique_ptr<formats::FormatWriter> writer =
      formats::for_recipe(recipe).open_writer(out.temp_path(), float_dtype);
  writer->add_float("model.embed_tokens.weight", embedding);

  ActivationSet anti_set{anti_pass ? model::embed(embedding, anti.tokens.ids) : Tensor(), &anti.tokens.layout,
                         anti.batch_size};
  ActivationSet calib_set{model::embed(embedding, calib.tokens.ids), &calib.tokens.layout, calib.batch_size};
  LayerOptions layer_options;
  layer_options.recipe = &recipe;
  layer_options.include_padding = include_padding;
  layer_options.float_dtype = float_dtype;
  layer_options.float_precision = o.float_precision;
  layer_options.search_rows = o.search_rows;
  times.add("setup", start);

  ordered_json per_layer = ordered_json::array();
  Progress progress("quant", static_cast<std::uint64_t>(config.num_hidden_layers), "layers", 0.0);
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    throw_if_interrupted();
    start = Clock::now();
    model::LayerTensors raw = model::read_layer_tensors(checkpoint, config, l);
    times.add("load", start);
    if (rotation) {
      start = Clock::now();
      quant::rotate_layer(config, l, raw, *rotation);
      times.add("rotation", start);
    }
    const QuantizedLayer q = v1 ? quantize_v1_layer(config, l, raw, calib_set, layer_options, times)
                                : quantize_v0_layer(config, l, raw, anti_set, calib_set, layer_options, times);
    start = Clock::now();
    write_layer(*writer, q);
    for (const auto& [name, tensor] : raw) checkpoint.release(name);
    times.add("writing", start);
    per_layer.push_back(layer_report(l, q));
    progress.set_detail(fmt::format("layer {} relative error {:.4f}", l, q.relative_error));
    progress.advance();
  }
  progress.finish();

  start = Clock::now();
  const bool norm_bias = !v1 && recipe.smooth && recipe.smooth->method == recipe::SmoothMethod::kM4;
  const Tensor final_norm = model::read_checked(checkpoint, "model.norm.weight", {config.hidden_size});
  const Tensor lm_head = config.tie_word_embeddings
                             ? raw_embedding
                             : model::read_checked(checkpoint, "lm_head.weight", vocab_by_hidden);
  writer->add_norm(quant::NormTensors{
      "model.norm", model::to_f32_vector(rotation ? quant::unit_norm_weight(final_norm) : final_norm),
      norm_bias ? Tensor::zeros(DType::kF32, {config.hidden_size}) : Tensor()});
  writer->add_float("lm_head.weight",
                    rotation ? quant::fold_and_rotate_lm_head(lm_head, final_norm, *rotation) : lm_head);
  ordered_json metadata = ordered_json::object();
  if (rotation) metadata["rotation"] = {{"method", "hadamard"}, {"seed", 42}};
  writer->finish(o.model_path, config.num_hidden_layers < input_layers ? config.num_hidden_layers : 0, metadata);
  times.add("finish", start);  // model.norm, lm_head, closing the shards, index, description, config

  ordered_json report;
  report["tool"] = "moeslim quant";
  report["recipe"] = recipe.name;
  report["recipe_file"] = recipe.file.string();
  report["apiversion"] = v1 ? "modelslim_v1" : "modelslim_v0";
  report["quant_type"] = o.quant_type;
  report["model_type"] = o.model_type;
  report["model_path"] = o.model_path.string();
  report["format"] = formats::for_recipe(recipe).name();
  report["rotation"] = rotation ? "hadamard" : "none";
  report["smoothing"] = !recipe.smooth ? "none"
                        : recipe.smooth->method == recipe::SmoothMethod::kM4 ? "m4"
                                                                              : "flex_smooth";
  report["anti_dataset"] = anti_pass ? o.anti_dataset.string() : "";
  report["calib_dataset"] = o.calib_dataset.string();
  report["float_precision"] = o.float_precision == model::FloatPrecision::kF32 ? "f32" : "bf16";
  report["batch_size"] = batch_size;
  report["stats_include_padding"] = include_padding;
  report["layers"] = config.num_hidden_layers;
  report["anti_tokens"] = anti.tokens.layout.real_rows();
  report["calibration_tokens"] = calib.tokens.layout.real_rows();
  report["per_layer"] = per_layer;
  if (!o.eval_data.empty()) {
    start = Clock::now();
    report["evaluation"] = evaluate_output(o, out.temp_path(), tokenizer);
    times.add("evaluation", start);
  }
  ordered_json timing;
  for (const auto& [phase, s] : times.seconds) timing[phase] = s;
  timing["total"] = std::chrono::duration<double>(Clock::now() - run_start).count();
  report["expected_output_bytes"] = need.output_bytes;
  report["expected_peak_memory_bytes"] = need.peak_memory_bytes;
  // Timings and the measured peak vary run to run: comparisons of reports drop these two keys.
  report["peak_rss_bytes"] = peak_rss_bytes();
  report["timing_seconds"] = timing;
  const std::filesystem::path report_path = out.temp_path() / "quant_report.json";
  {
    std::ofstream f(report_path);
    f << report.dump(2) << "\n";
    if (!f) throw Error(ErrorCode::kIo, "cannot write the report", report_path.string());
  }
  out.commit();
  return QuantResult{report};
}

}  // namespace moeslim::pipeline
