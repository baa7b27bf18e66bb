#include "formats/hf_directory.h"
#include "formats/msmodelslim/inspect.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/msmodelslim/inspect_parts.h"
#include "formats/msmodelslim/names.h"
#include "io/json_file.h"

namespace moeslim::formats::msmodelslim {
namespace {

namespace fs = std::filesystem;
using namespace inspect_detail;

std::optional<nlohmann::json> read_config(const fs::path& dir, Violations& violations) {
  const fs::path path = dir / kConfigFile;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    violations.push_back({kConfigFile, "missing"});
    return std::nullopt;
  }
  try {
    nlohmann::json config = io::read_json_file(path);
    if (config.is_object()) return config;
    violations.push_back({kConfigFile, "not a JSON object"});
  } catch (const Error& e) {
    violations.push_back({kConfigFile, e.what()});
  }
  return std::nullopt;
}

// config.json's torch_dtype (transformers >= 4.56 also writes "dtype"); else the embedding's dtype.
DType model_float_dtype(const std::optional<nlohmann::json>& config, const ShardSet& shards) {
  if (config) {
    for (const char* key : {"torch_dtype", "dtype"}) {
      const auto it = config->find(key);
      if (it == config->end() || !it->is_string()) continue;
      if (*it == "bfloat16") return DType::kBF16;
      if (*it == "float16") return DType::kF16;
      if (*it == "float32") return DType::kF32;
    }
  }
  const std::string embedding = "model.embed_tokens.weight";
  if (shards.contains(embedding)) {
    const DType d = shards.info(embedding).dtype;
    if (d == DType::kBF16 || d == DType::kF16 || d == DType::kF32) return d;
  }
  return DType::kBF16;
}

// The layout's config keys, and num_hidden_layers against the decoder layers actually stored (docs/msmodelslim-format.md §6).
void check_config(const nlohmann::json& config, std::optional<Layout> layout, const ShardSet& shards, Violations& violations) {
  const std::string file = kConfigFile;
  if (layout == Layout::kAscendV1 || layout == Layout::kMindIE) {
    if (!config.contains("quantize") || config["quantize"] != kW8A8QuantizeValue) {
      violations.push_back({file + ": quantize", std::string("must be \"") + kW8A8QuantizeValue + "\", is " +
                                                     (config.contains("quantize") ? config["quantize"].dump()
                                                                                  : std::string("missing"))});
    }
  }
  if (layout == Layout::kMindIE) {
    const nlohmann::json expected = {{"kv_quant_type", nullptr}, {"fa_quant_type", nullptr}, {"group_size", 0}};
    if (!config.contains("quantization_config") || config["quantization_config"] != expected) {
      violations.push_back({file + ": quantization_config", "must be " + expected.dump() + " in the MindIE layout"});
    }
  }
  if (layout == Layout::kAscendV1V1 && config.contains("quantization_config")) {
    violations.push_back({file + ": quantization_config", "the W4A8 layout removes this key"});
  }
  if (layout == Layout::kAscendV1V1 && config.contains("quantize")) {
    violations.push_back({file + ": quantize", "the W4A8 layout adds no quantize key (msModelSlim's v1 saver writes "
                                               "none; loaders read the scheme from the description)"});
  }

  std::set<long> layers;
  const std::string prefix = "model.layers.";
  for (const std::string& name : shards.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const std::string digits = rest.substr(0, rest.find('.'));
    if (!digits.empty() && digits.size() < 7 && digits.find_first_not_of("0123456789") == std::string::npos) {
      layers.insert(std::stol(digits));
    }
  }
  if (layers.empty()) return;
  const long found = *layers.rbegin() + 1;
  for (long l = 0; l < found; ++l) {
    if (!layers.count(l)) violations.push_back({prefix + std::to_string(l), "no tensors of this decoder layer"});
  }
  const auto it = config.find("num_hidden_layers");
  if (it == config.end() || !it->is_number_integer() || it->get<long>() != found) {
    violations.push_back({file + ": num_hidden_layers",
                          fmt::format("is {} but the shards hold layers 0..{}; the output would not load as a model",
                                      it == config.end() ? std::string("missing") : it->dump(), found - 1)});
  }
}

}  // namespace

InspectReport inspect_output_dir(const fs::path& dir, std::optional<Layout> expected) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(ErrorCode::kNotFound, "not a directory", dir.string());
  InspectReport report;
  report.dir = dir;
  const std::optional<Description> description = read_description(dir, report.violations);
  const std::optional<Layout> layout = description ? description->layout : std::nullopt;
  report.layout = layout_name(layout);
  if (expected && layout && *layout != *expected) {
    report.violations.push_back({description->file_name, fmt::format("the directory holds the {} layout, not {}",
                                                                      layout_name(layout), layout_name(expected))});
  }
  if (description) {
    report.description_file = description->file_name;
    report.model_quant_type = description->model_quant_type;
  }
  // An undecided header is checked as ascendV1, the default layout (its own violation already says why).
  const LayoutRules& rules = layout_rules(layout.value_or(expected.value_or(Layout::kAscendV1)));
  const ShardSet shards = ShardSet::open(dir, std::string(rules.shard_base), report.violations);
  report.index_file = shards.index_file();
  report.shard_names = shards.shard_names();
  report.tensor_count = shards.names().size();
  report.total_size = shards.total_size();

  const std::optional<nlohmann::json> config = read_config(dir, report.violations);
  report.float_dtype = model_float_dtype(config, shards);
  if (description) {
    check_tensors(RuleContext{rules, report.float_dtype, *description, shards}, report);
  } else {
    for (const std::string& name : shards.names()) {
      report.by_type["(undescribed)"].tensors++;
      report.by_type["(undescribed)"].bytes += shards.info(name).nbytes();
    }
  }
  if (config) check_config(*config, layout, shards, report.violations);
  return report;
}

std::optional<Layout> detect_layout(const fs::path& dir) {
  Violations ignored;  // detection only: inspect reports them
  const std::optional<Description> description = read_description(dir, ignored);
  return description ? description->layout : std::nullopt;
}

}  // namespace moeslim::formats::msmodelslim
