#include "formats/registry.h"

#include <memory>
#include <string>

#include "core/error.h"
#include "formats/compressed_tensors/format.h"
#include "formats/msmodelslim/layouts.h"

namespace moeslim::formats {
namespace {

const std::vector<std::unique_ptr<OutputFormat>>& registry() {
  static const std::vector<std::unique_ptr<OutputFormat>> formats = [] {
    std::vector<std::unique_ptr<OutputFormat>> f;
    for (msmodelslim::Layout layout : msmodelslim::all_layouts()) f.push_back(msmodelslim::make_format(layout));
    f.push_back(compressed_tensors::make_format());
    return f;
  }();
  return formats;
}

std::string leaf_of(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

}  // namespace

std::vector<const OutputFormat*> all_formats() {
  std::vector<const OutputFormat*> out;
  for (const auto& f : registry()) out.push_back(f.get());
  return out;
}

const OutputFormat& by_name(std::string_view name) {
  std::string known;
  for (const auto& f : registry()) {
    if (f->name() == name) return *f;
    known += (known.empty() ? "" : ", ") + std::string(f->name());
  }
  throw Error(ErrorCode::kNotFound, "no output format '" + std::string(name) + "' (known: " + known + ")");
}

const OutputFormat& for_recipe(const recipe::Recipe& recipe) {
  if (recipe.save_format == recipe::SaveFormat::kCompressedTensors) return by_name("compressed-tensors");
  if (recipe.api == recipe::ApiVersion::kV1) return by_name("ascendV1-v1");
  return by_name(recipe.save_format == recipe::SaveFormat::kMindIE ? "mindie" : "ascendV1");
}

LinearPlanOf linear_plan(const recipe::Recipe& recipe) {
  // m4 (the step that gives every norm a bias) also gives q, k and v a bias W·shift.
  const bool m4 = recipe.gives_norms_a_bias();
  return [&recipe, m4](const std::string& module) {
    LinearPlan plan;
    if (const quant::QuantGroup* group = recipe.group_for(module)) {
      plan.scheme = group->scheme;
      plan.grid = group->grid;
    }
    const std::string leaf = leaf_of(module);
    plan.has_bias = m4 && (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj");
    return plan;
  };
}

const OutputFormat* detect(const std::filesystem::path& dir) {
  for (const auto& f : registry()) {
    if (f->holds(dir)) return f.get();
  }
  return nullptr;
}

InspectReport inspect_dir(const std::filesystem::path& dir) {
  const OutputFormat* format = detect(dir);
  return (format != nullptr ? *format : *registry().front()).inspect(dir);
}

}  // namespace moeslim::formats
