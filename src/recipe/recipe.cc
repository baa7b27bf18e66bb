// load_recipe: the top-level keys of a recipe file and the Recipe methods; the process list is in
// process_parser.cc.
#include "recipe/recipe.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "quant/step_registry.h"
#include "recipe/process_parser.h"

namespace moeslim::recipe {
namespace {

using detail::MapReader;
using detail::Source;

// What each apiversion fills in (recipe.h's top comment).
quant::StepDefaults defaults_for(ApiVersion api) {
  quant::StepDefaults d;
  d.v1 = api == ApiVersion::kV1;
  d.apiversion = d.v1 ? "modelslim_v1" : "modelslim_v0";
  d.propagation = d.v1 ? quant::Propagation::kFloat : quant::Propagation::kQuantized;
  d.statistics_on_anti_set = !d.v1;
  return d;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void parse_match(const Source& src, const YAML::Node& node, Recipe& r) {
  MapReader m(src, node, "match", {"model_types", "quant_type"});
  r.model_types = src.as_string_list(m.require("model_types"), m.path("model_types"), /*non_empty=*/true);
  const YAML::Node qt = m.require("quant_type");
  const std::string q = lower(src.as_string(qt, m.path("quant_type")));
  if (q != "w8a8" && q != "w4a8") {
    src.fail(m.path("quant_type"), "'" + qt.Scalar() + "' is not a one-click quant type: expected w8a8 or w4a8", qt);
  }
  r.quant_type = q;
}

std::string parse_dataset_name(const Source& src, const MapReader& m, const std::string& key) {
  const std::string v = src.as_string(m.get(key), m.path(key));
  if (v.empty()) src.fail(m.path(key), "the dataset name is empty: leave the key out to use the default", m.get(key));
  return v;
}

void parse_data(const Source& src, const YAML::Node& node, Recipe& r) {
  MapReader m(src, node, "data", {"calib_dataset", "anti_dataset", "batch_size", "min_expert_tokens"});
  if (m.has("calib_dataset")) r.calib_dataset = parse_dataset_name(src, m, "calib_dataset");
  if (m.has("anti_dataset")) {
    if (r.api == ApiVersion::kV1) {
      src.fail(m.path("anti_dataset"),
               "anti_dataset is v0 only (apiversion modelslim_v0): modelslim_v1's flex_smooth takes its statistics "
               "from calib_dataset",
               m.get("anti_dataset"));
    }
    r.anti_dataset = parse_dataset_name(src, m, "anti_dataset");
  }
  if (m.has("batch_size")) {
    if (r.api == ApiVersion::kV1) {
      src.fail(m.path("batch_size"),
               "batch_size is v0 only (apiversion modelslim_v0): the v1 pipeline runs one prompt per forward",
               m.get("batch_size"));
    }
    r.batch_size = src.as_int(m.get("batch_size"), m.path("batch_size"), 1, 16);
  }
  if (m.has("min_expert_tokens")) {
    r.min_expert_tokens = src.as_int(m.get("min_expert_tokens"), m.path("min_expert_tokens"), 1, INT32_MAX);
  }
}

void parse_save(const Source& src, const YAML::Node& node, Recipe& r) {
  MapReader m(src, node, "save", {"format"});
  if (!m.has("format")) return;
  const std::vector<std::string> allowed = r.api == ApiVersion::kV1
                                               ? std::vector<std::string>{"ascendV1-v1", "compressed-tensors"}
                                               : std::vector<std::string>{"ascendV1", "mindie", "compressed-tensors"};
  const std::string f = src.as_choice(m.get("format"), m.path("format"), allowed);
  r.save_format = f == "mindie"               ? SaveFormat::kMindIE
                  : f == "compressed-tensors" ? SaveFormat::kCompressedTensors
                                              : SaveFormat::kAscendV1;
}

Recipe parse(const Source& src, const YAML::Node& root, const std::filesystem::path& file) {
  if (!root.IsDefined() || root.IsNull()) {
    src.fail("", "the file is empty: a recipe needs at least apiversion and process");
  }
  MapReader top(src, root, "", {"apiversion", "name", "description", "use_when", "match", "data", "process", "save"});
  Recipe r;
  r.file = file;
  // apiversion first: which methods, schemes and keys are allowed everywhere else depends on it.
  const std::string api = src.as_choice(top.require("apiversion"), "apiversion", {"modelslim_v0", "modelslim_v1"});
  r.api = api == "modelslim_v1" ? ApiVersion::kV1 : ApiVersion::kV0;
  r.defaults = defaults_for(r.api);
  r.name = file.stem().string();
  if (top.has("name")) {
    r.name = src.as_string(top.get("name"), "name");
    if (r.name.empty()) {
      src.fail("name", "the name is empty: leave the key out to use the file's stem", top.get("name"));
    }
  }
  if (top.has("description")) r.description = src.as_string(top.get("description"), "description");
  if (top.has("use_when")) r.use_when = src.as_string(top.get("use_when"), "use_when");
  if (top.has("match")) parse_match(src, top.get("match"), r);
  if (top.has("data")) parse_data(src, top.get("data"), r);
  detail::parse_process(src, top.require("process"), r);
  if (top.has("save")) parse_save(src, top.get("save"), r);
  return r;
}

}  // namespace

const quant::LayerStep* Recipe::find_step(const std::string& step_name) const {
  for (const auto& s : steps) {
    if (s->name() == step_name) return s.get();
  }
  return nullptr;
}

const quant::QuantizeStep& Recipe::quantize_step() const {
  const auto* q = dynamic_cast<const quant::QuantizeStep*>(find_step("quantize"));
  if (q == nullptr) throw Error(ErrorCode::kInternal, "the recipe has no quantize step", file.string());
  return *q;
}

std::vector<std::string> Recipe::step_names() const {
  std::vector<std::string> names;
  for (const auto& s : steps) names.push_back(s->name());
  return names;
}

bool Recipe::has_smoothing() const {
  return std::any_of(steps.begin(), steps.end(), [](const auto& s) { return s->phase() == "smoothing"; });
}

bool Recipe::observes() const {
  return std::any_of(steps.begin(), steps.end(), [](const auto& s) { return s->observes(); });
}

bool Recipe::gives_norms_a_bias() const {
  return std::any_of(steps.begin(), steps.end(), [](const auto& s) { return s->gives_norms_a_bias(); });
}

void Recipe::add_rotation() {
  if (find_step("rotate") == nullptr) steps.insert(steps.begin(), quant::default_rotate_step());
}

void Recipe::remove_smoothing() {
  std::erase_if(steps, [](const auto& s) { return s->phase() == "smoothing"; });
}

void Recipe::add_default_m4() {
  if (find_step("m4") != nullptr) return;
  remove_smoothing();
  const auto at = std::find_if(steps.begin(), steps.end(), [](const auto& s) { return s->name() == "quantize"; });
  steps.insert(at, quant::default_m4_step());
}

Recipe load_recipe(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const bool exists = std::filesystem::exists(file);
    throw Error(exists ? ErrorCode::kIo : ErrorCode::kNotFound,
                exists ? "cannot read the recipe file" : "recipe file not found", file.string());
  }
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::ParserException& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("YAML syntax error at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg),
                file.string());
  }
  const Source src(file.string());
  try {
    return parse(src, root, file);
  } catch (const YAML::Exception& e) {
    // Every read goes through yaml_fields' checked accessors; this is the net for anything they missed.
    throw Error(ErrorCode::kInvalidArgument, std::string("malformed recipe: ") + e.what(), file.string());
  }
}

}  // namespace moeslim::recipe
