// A quantization recipe: the steps that turn a float Qwen3-MoE checkpoint into a quantized one, read from a
// YAML file like msModelSlim's lab_practice/ files (../shared/spec/msmodelslim-algorithms.md §2 and §6.2). The
// bundled recipes live in configs/ (configs/qwen3_moe/*.yaml); `moeslim quant --config FILE` runs any file of
// this form and the one-click path (--model_type × --quant_type) picks a bundled one by its `match` block.
//
// File format (every key is checked: an unknown key, a wrong type or an impossible combination is a
// kInvalidArgument error naming the file and the key path, e.g. "process[1].smooth.subgraphs[2]"):
//
//   apiversion: modelslim_v0 | modelslim_v1   # which msModelSlim pipeline the recipe follows:
//                                             #  v0 = the W8A8 script: v0 integer formulas, static calibration
//                                             #       on the quantized layers' outputs, v0 layouts;
//                                             #  v1 = naive_quantization: v1 formulas, float activations carried
//                                             #       between layers, the W4A8 (ascendv1 v1) layout
//   name: qwen3-30b-w4a8                      # defaults to the file's stem
//   description: "..."                        # optional, one paragraph (shown by `moeslim recipes`)
//   match:                                    # optional: what the one-click path resolves to this file
//     model_types: [Qwen3-30B]
//     quant_type: w4a8                        # w8a8 | w4a8
//   data:                                     # optional
//     calib_dataset: qwen3-moe_calib_prompt_50.json   # a bare name is looked up in the project's data/
//     anti_dataset: qwen3-moe_anti_prompt_50.json     # v0 only (statistics for smoothing); default = calib
//     batch_size: 4                           # v0 only, 1..16 (v1 always runs one prompt per forward)
//   process:                                  # in this order; each kind at most once
//     - rotate: {method: hadamard}            # §5; must come before smooth
//     - smooth:
//         method: m4 | flex_smooth            # m4: v0 only; flex_smooth: v1 only
//         subgraphs: [norm-linear, ov, moe-input, up-down]   # m4 requires norm-linear and ov
//         alpha: 0.5                          # optional; flex_smooth: unset = α/β search of §6.3
//         beta: 0.5                           # optional, flex_smooth only
//     - quantize:                             # required; a list of groups, first matching group wins
//         - include: ["*self_attn*"]          # fnmatch-style globs (*, ?, [..]) on module names such as
//           exclude: []                       #   "model.layers.3.mlp.experts.7.up_proj", case-sensitive
//           scheme: w8a8 | w8a8_dynamic | w4a8_dynamic   # w8a8 (static): v0 only; w4a8_dynamic: v1 only
//           weight: minmax | ssz              # default minmax; ssz: v1 only
//           ssz_steps: 50                     # optional, ssz only
//   save:
//     format: ascendV1 | mindie               # v0 only (default ascendV1); v1 always writes its own layout
//
// Linears no group claims stay float; the router (`*.mlp.gate`) must stay float (a group that matches it and
// does not exclude it is an error), and lm_head and the embeddings are always float.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "quant/quant_types.h"

namespace moeslim::recipe {

enum class ApiVersion { kV0, kV1 };
enum class SmoothMethod { kM4, kFlexSmooth };
enum class Subgraph { kNormLinear, kOv, kMoeInput, kUpDown };
enum class WeightMethod { kMinMax, kSsz };
enum class SaveFormat { kAscendV1, kMindIE };  // v0 layouts; v1 recipes ignore it

struct SmoothStep {
  SmoothMethod method = SmoothMethod::kM4;
  std::vector<Subgraph> subgraphs;  // as listed in the file, no duplicates
  std::optional<double> alpha;      // in [0, 1]
  std::optional<double> beta;       // in [0, 1], flex_smooth only
  bool has(Subgraph s) const;
};

struct QuantGroup {
  std::vector<std::string> include;  // at least one glob
  std::vector<std::string> exclude;
  quant::QuantScheme scheme = quant::QuantScheme::kW8A8Dynamic;  // never kFloat
  WeightMethod weight = WeightMethod::kMinMax;
  int ssz_steps = 50;
  bool matches(const std::string& module) const;  // some include matches and no exclude matches
};

struct Recipe {
  std::filesystem::path file;  // where it was read from
  ApiVersion api = ApiVersion::kV0;
  std::string name;
  std::string description;
  std::vector<std::string> model_types;  // match.model_types
  std::string quant_type;                // match.quant_type, "" when the file has no match block
  std::string calib_dataset;             // "" = the caller's default
  std::string anti_dataset;              // "" = same as the calibration set
  std::optional<std::int64_t> batch_size;
  bool rotate = false;
  std::optional<SmoothStep> smooth;
  std::vector<QuantGroup> groups;  // first match wins
  SaveFormat save_format = SaveFormat::kAscendV1;

  // The group that claims `module` (a full module name), or nullptr: the module stays float.
  const QuantGroup* group_for(const std::string& module) const;
};

// fnmatchcase semantics: '*' any run (including '/' and '.'), '?' one character, '[abc]' / '[a-z]' / '[!a]'
// a class; no escapes. kInvalidArgument for an unterminated '['.
bool glob_match(const std::string& pattern, const std::string& text);

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
