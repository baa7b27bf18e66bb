// `moeslim quant`: msModelSlim's Qwen3-MoE quantization, accepting the flags of both of its entry points
// (the example script quant_qwen_moe_w8a8.py and the one-click `msmodelslim quant`).
#include <algorithm>
#include <cstdio>
#include <vector>
#include <string>

#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/resources.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/threading.h"
#include "pipeline/w8a8_pipeline.h"

namespace moeslim::cli {
namespace {

struct QuantOptions {
  std::string model_path;
  std::string save_path;
  std::string quant_type = "w8a8";
  std::string model_type;
  std::string anti_dataset;
  std::string calib_dataset;
  std::string eval_data;
  std::string anti_method = "m4";
  std::string precision = "bf16";
  std::string trust_remote_code = "False";
  std::int64_t layer_count = 0;
  std::int64_t batch_size = 4;
  int threads = 1;
  bool mindie_format = false;
  bool rot = false;
  bool stats_include_padding = false;
  bool force = false;
  bool batch_size_given = false;
};

int run_quant(const QuantOptions& o) {
  kernels::set_num_threads(o.threads);
  if (o.quant_type != "w8a8") {
    throw Error(ErrorCode::kUnsupported, "only w8a8 is implemented so far (w4a8 is planned)", "", "--quant_type");
  }
  pipeline::W8A8Options p;
  // msModelSlim's one-click entry point (`msmodelslim quant --model_type ...`) takes the anti-outlier
  // statistics on the calibration set and feeds the prompts one at a time (algorithms spec §2); its flags
  // get its defaults.
  const bool one_click = !o.model_type.empty();
  p.model_path = o.model_path;
  p.save_path = o.save_path;
  p.calib_dataset = o.calib_dataset.empty() ? resource_path("data/qwen3-moe_calib_prompt_50.json")
                                            : std::filesystem::path(o.calib_dataset);
  p.anti_dataset = !o.anti_dataset.empty() ? std::filesystem::path(o.anti_dataset)
                   : one_click             ? p.calib_dataset
                                           : resource_path("data/qwen3-moe_anti_prompt_50.json");
  p.eval_data = o.eval_data;
  p.layer_count = o.layer_count;
  p.batch_size = one_click && !o.batch_size_given ? 1 : o.batch_size;
  if (one_click) {
    log_info("quant: --model_type {}: msModelSlim's one-click defaults (anti set = calibration set{})", o.model_type,
             o.batch_size_given ? "" : ", one prompt per batch");
  }
  p.mindie_format = o.mindie_format;
  p.stats_include_padding = o.stats_include_padding;
  p.force = o.force;
  p.rotate = o.rot;
  p.anti_method = o.anti_method == "none" ? pipeline::AntiMethod::kNone : pipeline::AntiMethod::kM4;
  p.model_type = o.model_type;
  p.float_precision = o.precision == "f32" ? model::FloatPrecision::kF32 : model::FloatPrecision::kBF16;
  const pipeline::W8A8Result r = pipeline::run_w8a8(p);
  const auto& timing = r.report["timing_seconds"];
  log_info("quant: wrote {} in {:.1f} s; report (every expert's token count, timings): {}/quant_report.json", o.save_path,
           timing["total"].get<double>(), o.save_path);
  for (const auto& [phase, seconds] : timing.items()) {
    if (phase != "total") log_info("  {:<22} {:8.2f} s", phase, seconds.get<double>());
  }
  for (const auto& layer : r.report["per_layer"]) {
    std::string line = fmt::format("  layer {:3}  relative error {:.5f}", layer["layer"].get<std::int64_t>(),
                                   layer["relative_error"].get<double>());
    if (layer.contains("expert_tokens")) {
      std::vector<std::int64_t> counts = layer["expert_tokens"].get<std::vector<std::int64_t>>();
      std::sort(counts.begin(), counts.end());
      line += fmt::format("  expert tokens min {} median {} max {}", counts.front(), counts[counts.size() / 2],
                          counts.back());
      if (!layer["experts_without_tokens"].empty()) {
        line += fmt::format("; quantized data-free (no calibration token): experts {}",
                            layer["experts_without_tokens"].dump());
      }
    }
    log_info("{}", line);
  }
  return 0;
}

}  // namespace

CommandRunner register_quant(CLI::App& app) {
  auto o = std::make_shared<QuantOptions>();
  CLI::App* sub = app.add_subcommand(
      "quant",
      "Quantize a Qwen3-MoE checkpoint as msModelSlim's Qwen3-MoE example does, one decoder layer at a time.\n"
      "W8A8 mixed: q/k/v/o W8A8 static (per-channel int8 weights, per-tensor activation scale/offset from\n"
      "calibration), experts W8A8 dynamic (per-token activation scales at run time); router, norms, embeddings\n"
      "and lm_head stay float; anti-outlier smoothing m4 first. Output: msModelSlim's ascendV1 layout (or the\n"
      "older MindIE layout with --mindie_format), loadable by MindIE and vLLM-Ascend, plus quant_report.json.\n"
      "The output is built in a temporary directory beside --save_path and renamed into place when complete.\n"
      "Examples:\n"
      "  msModelSlim's script:    moeslim quant --model_path models/tiny-qwen3-moe --save_path /tmp/w8a8 \\\n"
      "                             --anti_dataset data/qwen3-moe_anti_prompt_50.json \\\n"
      "                             --calib_dataset data/qwen3-moe_calib_prompt_50.json --batch_size 4\n"
      "  its one-click CLI:       moeslim quant --model_type Qwen3-30B --quant_type w8a8 --model_path M --save_path S\n"
      "  measure the result too:  add --eval_data data/eval_valid.jsonl (perplexity, KL, top-1 vs float)");
  sub->add_option("--model_path", o->model_path, "Hugging Face checkpoint directory (bf16 safetensors + config)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--save_path", o->save_path, "Output directory (must not exist or be empty unless --force)")
      ->required();
  sub->add_option("--quant_type", o->quant_type, "w8a8 (w4a8 is planned)")->capture_default_str();
  sub->add_option("--model_type", o->model_type,
                  "Qwen3-30B | Qwen3-235B: msModelSlim's one-click entry point; takes its defaults (anti set = "
                  "calibration set, one prompt per batch)")
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
  sub->add_flag("--mindie_format", o->mindie_format, "Write the older MindIE (<= 2.1.RC1) safe_tensor layout");
  sub->add_flag("--rot", o->rot, "Hadamard rotation first (msModelSlim's rot_qwen: norms folded into the linears, R1 on the residual "
                "stream, R2 per V head); the output is an ordinary checkpoint with unit norm weights");
  sub->add_option("--trust_remote_code", o->trust_remote_code,
                  "Accepted for compatibility and ignored: moeslim never runs code from a model directory")
      ->capture_default_str()
      ->check(CLI::IsMember({"True", "False", "true", "false"}));
  sub->add_option("--anti_method", o->anti_method, "Anti-outlier method: m4 (msModelSlim's) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"m4", "none"}));
  sub->add_flag("--stats-include-padding", o->stats_include_padding,
                "Right-pad each batch and let the pads enter every statistic, as msModelSlim does (default: pads "
                "are excluded — the prompts of a batch are packed without padding)");
  sub->add_option("--eval_data", o->eval_data,
                  "After writing, evaluate the output against the float model on this text (perplexity, KL, top-1)")
      ->check(CLI::ExistingFile);
  sub->add_option("--precision", o->precision,
                  "GEMM precision of the float passes (anti statistics, float reference): bf16 computes as "
                  "msModelSlim does on a bf16 model and is about 2x faster; f32 is exact float32")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f32"}));
  sub->add_option("--threads", o->threads, "Compute threads")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_flag("--force", o->force, "Replace a non-empty --save_path");
  return [o, batch] {
    o->batch_size_given = batch->count() > 0;
    return run_quant(*o);
  };
}

}  // namespace moeslim::cli
