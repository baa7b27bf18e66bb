// `moeslim quant`: msModelSlim's Qwen3-MoE quantization, accepting the flags of both of its entry points
// (the example script quant_qwen_moe_w8a8.py and the one-click `msmodelslim quant`).
#include <algorithm>
#include <cstdio>
#include <vector>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/resources.h"
#include "cli/thread_option.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/threading.h"
#include "pipeline/quant_pipeline.h"
#include "recipe/recipe.h"

namespace moeslim::cli {
namespace {

struct QuantOptions {
  std::string model_path;
  std::string save_path;
  std::string quant_type;
  std::string model_type;
  std::string config;
  std::string anti_dataset;
  std::string calib_dataset;
  std::string eval_data;
  std::string anti_method = "recipe";
  std::string precision = "bf16";
  std::string trust_remote_code = "False";
  std::int64_t layer_count = 0;
  std::int64_t batch_size = 4;
  std::int64_t search_rows = 0;
  std::int64_t expert_group = 0;
  int threads = 1;
  bool mindie_format = false;
  bool rot = false;
  bool stats_include_padding = false;
  bool force = false;
  bool skip_disk_space_check = false;
  bool batch_size_given = false;
};

// Which recipe runs: --config FILE; else the bundled practice recipe for --model_type × --quant_type (the
// one-click entry point); else msModelSlim's W8A8 script, configs/qwen3_moe/qwen3-moe-w8a8.yaml.
recipe::Recipe choose_recipe(const QuantOptions& o) {
  if (!o.config.empty()) return recipe::load_recipe(o.config);
  const std::string quant_type = o.quant_type.empty() ? "w8a8" : o.quant_type;
  if (!o.model_type.empty()) return recipe::find_bundled_recipe(resource_path("configs"), o.model_type, quant_type);
  if (quant_type != "w8a8") {
    throw Error(ErrorCode::kInvalidArgument,
                "--quant_type " + quant_type + " needs --model_type Qwen3-30B|Qwen3-235B (which practice recipe) "
                "or --config FILE", "", "--quant_type");
  }
  return recipe::load_recipe(resource_path("configs/qwen3_moe/qwen3-moe-w8a8.yaml"));
}

// The flags that change a recipe's steps. Each refuses what the recipe's pipeline cannot do.
void apply_flag_overrides(const QuantOptions& o, recipe::Recipe& r) {
  const bool v1 = r.api == recipe::ApiVersion::kV1;
  const auto refuse = [&](const char* flag, const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, why, r.file.string(), flag);
  };
  if (o.rot) r.add_rotation();
  if (o.anti_method == "none") {
    r.remove_smoothing();
  } else if (o.anti_method == "m4") {
    if (v1) refuse("--anti_method", "m4 belongs to the v0 (W8A8 script) pipeline; this recipe is modelslim_v1");
    r.add_default_m4();
  }
  if (o.mindie_format) {
    if (v1) refuse("--mindie_format", "the MindIE safe_tensor layout is a v0 (W8A8) layout");
    if (r.save_format == recipe::SaveFormat::kCompressedTensors) {
      refuse("--mindie_format", "this recipe writes compressed-tensors (its save.format)");
    }
    r.save_format = recipe::SaveFormat::kMindIE;
  }
  if (v1 && o.batch_size_given) refuse("--batch_size", "modelslim_v1 recipes feed one prompt per forward");
  if (v1 && o.stats_include_padding) {
    refuse("--stats-include-padding", "modelslim_v1 recipes feed one prompt per forward, without padding");
  }
}

int run_quant(const QuantOptions& o) {
  kernels::set_num_threads(o.threads);
  recipe::Recipe r = choose_recipe(o);
  apply_flag_overrides(o, r);
  const bool v1 = r.api == recipe::ApiVersion::kV1;
  // msModelSlim's one-click entry point (`msmodelslim quant --model_type ...`) takes the anti-outlier
  // statistics on the calibration set and feeds the prompts one at a time (docs/msmodelslim-algorithms.md §2,
  // §7.3); its flags get its defaults.
  const bool one_click = !o.model_type.empty() && o.config.empty();
  const std::filesystem::path data_dir = resource_path("data");
  pipeline::QuantRunOptions p;
  p.model_path = o.model_path;
  p.save_path = o.save_path;
  p.calib_dataset = !o.calib_dataset.empty() ? std::filesystem::path(o.calib_dataset)
                    : !r.calib_dataset.empty()
                        ? recipe::resolve_dataset(r, r.calib_dataset, "data.calib_dataset", data_dir)
                        : data_dir / "qwen3-moe_calib_prompt_50.json";
  p.anti_dataset = !o.anti_dataset.empty()                   ? std::filesystem::path(o.anti_dataset)
                   : one_click || r.anti_dataset.empty()     ? p.calib_dataset
                                                             : recipe::resolve_dataset(r, r.anti_dataset,
                                                                                       "data.anti_dataset", data_dir);
  if (v1 && !o.anti_dataset.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "modelslim_v1 recipes take their statistics on the calibration set",
                r.file.string(), "--anti_dataset");
  }
  p.eval_data = o.eval_data;
  p.layer_count = o.layer_count;
  p.batch_size = o.batch_size_given ? o.batch_size : one_click ? 1 : r.batch_size.value_or(o.batch_size);
  if (one_click && !v1) {
    log_info("quant: --model_type {}: msModelSlim's one-click defaults (anti set = calibration set{})", o.model_type,
             o.batch_size_given ? "" : ", one prompt per batch");
  }
  p.stats_include_padding = o.stats_include_padding;
  p.force = o.force;
  p.skip_disk_space_check = o.skip_disk_space_check;
  p.model_type = o.model_type;
  p.quant_type = !o.quant_type.empty() ? o.quant_type : !r.quant_type.empty() ? r.quant_type : "";
  p.float_precision = o.precision == "f32" ? model::FloatPrecision::kF32 : model::FloatPrecision::kBF16;
  p.search_rows = o.search_rows;
  p.experts_per_group = o.expert_group;
  const pipeline::QuantReport report = pipeline::run_quant(r, p).report;
  log_info("quant: wrote {} in {:.1f} s; report (every expert's token count, timings): {}/quant_report.json, to read: "
           "{}/quant_report.html",
           o.save_path, report.timing_seconds.at("total"), o.save_path, o.save_path);
  for (const auto& [phase, seconds] : report.timing_seconds) {
    if (phase != "total") log_info("  {:<22} {:8.2f} s", phase, seconds);
  }
  for (const pipeline::LayerReport& layer : report.per_layer) {
    std::string line = fmt::format("  layer {:3}  relative error {:.5f}", layer.layer, layer.relative_error);
    if (!layer.expert_tokens.empty()) {
      std::vector<std::int64_t> counts = layer.expert_tokens;
      std::sort(counts.begin(), counts.end());
      line += fmt::format("  expert tokens min {} median {} max {}", counts.front(), counts[counts.size() / 2],
                          counts.back());
      const std::int64_t floor = report.starved_expert_min_tokens;
      const std::vector<std::int64_t> starved = layer.starved_experts(floor);
      if (!starved.empty()) {
        line += fmt::format("; quantized data-free ({}): experts [{}]",
                            floor <= 1 ? std::string("no calibration token")
                                       : fmt::format("fewer than min_expert_tokens = {} calibration tokens", floor),
                            fmt::join(starved, ","));
      }
    }
    if (layer.router_agreement) {
      line += fmt::format("  router same experts {:.4f}", layer.router_agreement->exact);
    }
    for (const quant::SmoothingChoice& choice : layer.smoothing) {
      line += fmt::format("  {} α {:.2f} β {:.2f}", choice.subgraph, choice.alpha, choice.beta);
    }
    log_info("{}", line);
  }
  if (report.evaluation) {
    const pipeline::EvaluationReport& e = *report.evaluation;
    log_info("quant: evaluation on {} ({} tokens): perplexity {:.4f} vs float {:.4f} ({:+.2f} %), mean KL {:.5f}, "
             "top-1 agreement {:.4f}",
             e.data, e.tokens, e.quantized_perplexity, e.float_perplexity, 100.0 * e.perplexity_change, e.mean_kl,
             e.top1_agreement);
    if (!e.router_layers.empty()) {
      log_info("quant: router agreement on {}: {:.4f} of tokens keep their top-k experts, mean overlap {:.4f}", e.data,
               e.router_total.exact, e.router_total.mean_overlap);
    }
  }
  return 0;
}

}  // namespace

CommandRunner register_quant(CLI::App& app) {
  auto o = std::make_shared<QuantOptions>();
  CLI::App* sub = app.add_subcommand(
      "quant",
      "Quantize a Qwen3-MoE checkpoint as msModelSlim's Qwen3-MoE example does, one decoder layer at a time,\n"
      "following a recipe (configs/, see `moeslim recipes`):\n"
      "  w8a8 (the W8A8 script, configs/qwen3_moe/qwen3-moe-w8a8.yaml): q/k/v/o W8A8 static (per-channel int8\n"
      "    weights, per-tensor activation scale/offset from calibration), experts W8A8 dynamic (per-token\n"
      "    activation scales at run time); anti-outlier smoothing m4 first, optional --rot before it.\n"
      "  w4a8 (the one-click path, --model_type Qwen3-30B|Qwen3-235B): flex_smooth_quant, attention W8A8 dynamic,\n"
      "    experts int4 weights with int8 dynamic activations (Qwen3-30B: layers 41-47 stay int8).\n"
      "Router, norms, embeddings and lm_head stay float. Output: msModelSlim's layouts (ascendV1, or the v1\n"
      "saver's for w4a8), loadable by MindIE and vLLM-Ascend; --mindie_format writes the older safe_tensor layout\n"
      "for MindIE <= 2.1.RC1 only (vLLM-Ascend cannot load it). Plus quant_report.json and quant_report.html,\n"
      "the page to read after the run (see `moeslim report`). The output is built in a temporary directory\n"
      "beside --save_path and renamed into place when complete.\n"
      "Examples:\n"
      "  msModelSlim's script:    moeslim quant --model_path models/tiny-qwen3-moe --save_path /tmp/w8a8 \\\n"
      "                             --anti_dataset data/qwen3-moe_anti_prompt_50.json \\\n"
      "                             --calib_dataset data/qwen3-moe_calib_prompt_50.json --batch_size 4 [--rot]\n"
      "  its one-click CLI:       moeslim quant --model_type Qwen3-30B --quant_type w4a8 --model_path M --save_path S\n"
      "  any recipe file:         moeslim quant --config configs/qwen3_moe/qwen3-30b-w4a8-plus.yaml ...\n"
      "  measure the result too:  add --eval_data data/eval_valid.jsonl (perplexity, KL, top-1 vs float)");
  sub->add_option("--model_path", o->model_path, "Hugging Face checkpoint directory (bf16 safetensors + config)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--save_path", o->save_path, "Output directory (must not exist or be empty unless --force)")
      ->required();
  sub->add_option("--quant_type", o->quant_type,
                  "w8a8 (default) | w4a8 (needs --model_type): with --model_type, picks the bundled recipe")
      ->check(CLI::IsMember({"w8a8", "w4a8"}));
  sub->add_option("--config", o->config,
                  "A recipe file (YAML, the format of configs/*/*.yaml); the flags below still override its "
                  "datasets, batch size, rotation, smoothing and layout")
      ->check(CLI::ExistingFile);
  sub->add_option("--model_type", o->model_type,
                  "Qwen3-30B | Qwen3-235B: msModelSlim's one-click entry point: the bundled recipe for this model "
                  "and --quant_type, with its defaults (w8a8: anti set = calibration set, one prompt per batch)")
      ->check(CLI::IsMember({"Qwen3-30B", "Qwen3-235B"}));
  sub->add_option("--anti_dataset", o->anti_dataset,
                  "Prompts for the anti-outlier statistics (JSON array of strings, or JSONL with \"text\" or "
                  "\"inputs_pretokenized\"); default: the bundled qwen3-moe_anti_prompt_50.json");
  sub->add_option("--calib_dataset", o->calib_dataset,
                  "Prompts for calibration; default: the bundled qwen3-moe_calib_prompt_50.json");
  sub->add_option("--layer_count", o->layer_count,
                  "Quantize only the first N decoder layers (0 = all). Unlike msModelSlim, the output config.json "
                  "says N layers, so the result loads and evaluates as a model")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI::Option* batch = sub->add_option("--batch_size", o->batch_size,
                                       "Prompts per calibration batch (1..16); the static activation range is the "
                                       "mean over batches of each batch's min/max. Default 4 (1 with --model_type)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  sub->add_flag("--mindie_format", o->mindie_format, "Write the older safe_tensor layout, for MindIE <= 2.1.RC1 only: vLLM-Ascend reads only\n"
                "quant_model_description.json, would take this layout's config.json quantization_config as the\n"
                "description, and has no parameter for its norms' *.module.weight copies");
  sub->add_flag("--rot", o->rot, "Hadamard rotation first (msModelSlim's rot_qwen: norms folded into the linears, R1 on the residual "
                "stream, R2 per V head); the output is an ordinary checkpoint with unit norm weights");
  sub->add_option("--trust_remote_code", o->trust_remote_code,
                  "Accepted for compatibility and ignored: moeslim never runs code from a model directory")
      ->capture_default_str()
      ->check(CLI::IsMember({"True", "False", "true", "false"}));
  sub->add_option("--anti_method", o->anti_method,
                  "Smoothing: recipe (what the recipe says), m4 (msModelSlim's W8A8 method; v0 recipes) or none "
                  "(drop the recipe's smoothing step)")
      ->capture_default_str()
      ->check(CLI::IsMember({"recipe", "m4", "none"}));
  sub->add_flag("--stats-include-padding", o->stats_include_padding,
                "Right-pad each batch and let the pads enter every statistic, as msModelSlim does (default: pads "
                "are excluded — the prompts of a batch are packed without padding)");
  sub->add_option("--eval_data", o->eval_data,
                  "After writing, evaluate the output against the float model on this text (perplexity, KL, top-1)")
      ->check(CLI::ExistingFile);
  sub->add_option("--precision", o->precision,
                  "GEMM precision of the float passes (anti statistics, float reference, GPTQ's Hessians): bf16 "
                  "computes as msModelSlim does on a bf16 model and is about 2x faster; f32 is exact float32")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f32"}));
  sub->add_option("--search_rows", o->search_rows,
                  "flex_smooth's alpha/beta search on at most this many activation rows per subgraph, evenly "
                  "strided (0 = all, msModelSlim's behaviour; large models may want e.g. 4096)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--expert_group", o->expert_group,
                  "Experts held at once: each layer's experts are loaded, run, quantized and written this many at a "
                  "time, which bounds the peak memory (0 = auto: groups of at most 1.5 GiB of float weights, two "
                  "or more experts per thread). The output is the same for every value; with --rot, groups "
                  "smaller than the layer rotate each expert weight at each read (slower, less memory)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_threads_option(*sub, o->threads);
  sub->add_flag("--force", o->force, "Replace a non-empty --save_path");
  sub->add_flag("--skip_disk_space_check", o->skip_disk_space_check,
                "Write even when the estimated output size exceeds the free space of --save_path's filesystem "
                "(by default the run refuses before doing any work)");
  return [o, batch] {
    o->batch_size_given = batch->count() > 0;
    return run_quant(*o);
  };
}

}  // namespace moeslim::cli
