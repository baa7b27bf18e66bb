// A quantization recipe: the steps that turn a float Qwen3-MoE checkpoint into a quantized one, read from a
// YAML file like msModelSlim's lab_practice/ files (docs/msmodelslim-algorithms.md §2 and §6.2). The bundled
// recipes live in configs/ (configs/qwen3_moe/*.yaml); `moeslim quant --config FILE` runs any file of this form
// and the one-click path (--model_type × --quant_type) picks a bundled one by its `match` block.
//
// File format (every key is checked: an unknown key, a wrong type or an impossible combination is a
// kInvalidArgument error naming the file and the key path, e.g. "process[1].smooth.subgraphs[2]"):
//
//   apiversion: modelslim_v0 | modelslim_v1   # fills defaults, the way msModelSlim's two pipelines behave:
//                                             #  v0 (the W8A8 script): v0 weight formulas, statistics on a
//                                             #       separate anti set, the next layer calibrated on the
//                                             #       quantized layer's outputs, batches of 4, v0 layouts;
//                                             #  v1 (naive_quantization): v1 formulas, statistics on the
//                                             #       calibration set, float activations carried between
//                                             #       layers, one prompt per forward, the W4A8 (ascendV1 v1)
//                                             #       layout
//   name: qwen3-30b-w4a8                      # defaults to the file's stem
//   description: "..."                        # optional, one paragraph (shown by `moeslim recipes`)
//   use_when: "..."                           # optional, one line: when a user should pick this recipe
//   match:                                    # optional: what the one-click path resolves to this file
//     model_types: [Qwen3-30B]
//     quant_type: w4a8                        # w8a8 | w4a8
//   data:                                     # optional
//     calib_dataset: qwen3-moe_calib_prompt_50.json   # a bare name is looked up in the project's data/
//     anti_dataset: qwen3-moe_anti_prompt_50.json     # v0 only (statistics for smoothing); default = calib
//     batch_size: 4                           # v0 only, 1..16 (v1 always runs one prompt per forward)
//     min_expert_tokens: 1                    # an expert the router sent fewer calibration tokens is "starved":
//                                             #   quantized from its weights alone (no up-down smoothing, GPTQ's
//                                             #   data-free fallback); default 1, i.e. only experts with none
//   process:                                  # the steps (quant/step_registry.h), in this order; each key once
//     - rotate: {method: hadamard}            # §5; must come before smooth
//     - smooth:
//         method: m4 | flex_smooth            # m4: v0 only; flex_smooth: v1 only
//         subgraphs: [norm-linear, ov, moe-input, up-down]   # m4 requires norm-linear and ov
//         alpha: 0.5                          # optional; flex_smooth: unset = α/β search of §6.3
//         beta: 0.5                           # optional, flex_smooth only
//     - quantize:                             # required; a list of groups, first matching group wins
//         - include: ["*self_attn*"]          # fnmatch-style globs (*, ?, [..]) on module names such as
//           exclude: []                       #   "model.layers.3.mlp.experts.7.up_proj", case-sensitive
//           scheme: w8a8 | w8a8_dynamic | w4a8_dynamic | w4a16   # w8a8 (static): v0 only; the 4-bit: v1 only
//           group_size: 128                   # w4a16 only: input columns per scale (0: one per channel)
//           symmetric: true                   # w4a16 only: false adds an integer zero point per scale
//           weight: minmax | ssz | gptq       # default minmax; ssz, gptq: v1 only
//           ssz_steps: 50                     # optional, ssz only
//           gptq_dampening: 0.01              # optional, gptq only: λ relative to mean(diag H)
//           gptq_act_order: true              # optional, gptq only: columns by descending diag H
//           gptq_min_tokens: 32               # optional, gptq only: fewer calibration tokens -> fallback
//           gptq_fallback: ssz | minmax       # optional, gptq only: the data-free method for those
//   save:
//     format: ascendV1 | mindie | compressed-tensors   # v0 (default ascendV1)
//     format: ascendV1-v1 | compressed-tensors          # v1 (default ascendV1-v1)
//
// Linears no group claims stay float; the router (`*.mlp.gate`) must stay float (a group that matches it and
// does not exclude it is an error), and lm_head and the embeddings are always float.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "quant/quantize_step.h"
#include "quant/step.h"

namespace moeslim::recipe {

enum class ApiVersion { kV0, kV1 };
// v0 recipes write msModelSlim's ascendV1 (the default) or MindIE layout, v1 ones its v1 layout; either may write
// compressed-tensors instead.
enum class SaveFormat { kAscendV1, kMindIE, kCompressedTensors };

struct Recipe {
  std::filesystem::path file;  // where it was read from
  ApiVersion api = ApiVersion::kV0;
  quant::StepDefaults defaults;  // what apiversion fills in
  std::string name;
  std::string description;
  std::string use_when;                  // one line: when to pick it ("" when the file says nothing)
  std::vector<std::string> model_types;  // match.model_types
  std::string quant_type;                // match.quant_type, "" when the file has no match block
  std::string calib_dataset;             // "" = the caller's default
  std::string anti_dataset;              // "" = same as the calibration set
  std::optional<std::int64_t> batch_size;
  std::int64_t min_expert_tokens = 1;  // data.min_expert_tokens: fewer calibration tokens make an expert starved
  quant::StepList steps;  // process, in order (the quantize step adds static calibration after itself)
  SaveFormat save_format = SaveFormat::kAscendV1;

  // The step named `name` ("rotate", "m4", "flex_smooth", "quantize", ...), or nullptr.
  const quant::LayerStep* find_step(const std::string& name) const;
  const quant::QuantizeStep& quantize_step() const;  // every recipe has one
  std::vector<std::string> step_names() const;       // in order
  bool has_smoothing() const;                        // a step whose phase is smoothing
  bool observes() const;                             // some step reads float-pass statistics
  bool gives_norms_a_bias() const;

  // The command line's overrides (--rot, --anti_method none | m4): add a rotate step at the front, drop the
  // smoothing steps, or add m4 (norm-linear + ov, α 0.5) when the recipe has no m4.
  void add_rotation();
  void remove_smoothing();
  void add_default_m4();

  // The group that claims `module` (a full Hugging Face module name), or nullptr: the module stays float.
  const quant::QuantGroup* group_for(const std::string& module) const { return quantize_step().group_for(module); }
};

// Reads and validates a recipe file.
Recipe load_recipe(const std::filesystem::path& file);

// The project's bundled recipes: every *.yaml under `configs_dir` (recursively), loaded, sorted by name.
std::vector<Recipe> bundled_recipes(const std::filesystem::path& configs_dir);

// The bundled recipe whose match block names `model_type` and `quant_type` (both compared case-insensitively);
// kNotFound listing the available (model type, quant type) pairs when none does, kInvalidArgument when two do.
Recipe find_bundled_recipe(const std::filesystem::path& configs_dir, const std::string& model_type,
                           const std::string& quant_type);

// A dataset named in a recipe: an absolute path; else relative to the recipe's directory if that exists; else
// a bare name in `data_dir` (the project's data/, cli::resource_path("data")). kNotFound naming the recipe file
// and the key (e.g. "data.calib_dataset") otherwise.
std::filesystem::path resolve_dataset(const Recipe& recipe, const std::string& name, const std::string& key,
                                      const std::filesystem::path& data_dir);

}  // namespace moeslim::recipe
