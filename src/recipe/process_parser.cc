#include "recipe/process_parser.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "quant/step_registry.h"

namespace moeslim::recipe::detail {

void parse_process(const Source& src, const YAML::Node& node, Recipe& recipe) {
  const std::string path = "process";
  const std::vector<std::string> keys = quant::process_keys();
  if (!node.IsSequence()) {
    src.fail(path, fmt::format("expected a list of steps ({}), got {}", fmt::join(keys, ", "), describe(node)), node);
  }
  // Steps run in the registry's order (rotation is a change of basis of the float model, smoothing works on the
  // rotated weights, quantization consumes the result); each key at most once.
  std::vector<int> first_at(keys.size(), -1);
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string step_path = io::yaml::index_path(path, i);
    const MapReader step(src, node[i], step_path, keys);
    if (step.size() != 1) {
      src.fail(step_path, fmt::format("each step is a mapping with exactly one key: {}", fmt::join(keys, ", ")),
               node[i]);
    }
    const std::string kind = step.first_key();
    const auto k = static_cast<std::size_t>(std::find(keys.begin(), keys.end(), kind) - keys.begin());
    const std::string kind_path = step.path(kind);
    if (first_at[k] >= 0) {
      src.fail(kind_path,
               fmt::format("step '{}' appears twice (first at process[{}]); each kind may appear at most once", kind,
                           first_at[k]),
               node[i]);
    }
    for (std::size_t later = k + 1; later < keys.size(); ++later) {
      if (first_at[later] >= 0) {
        src.fail(kind_path,
                 fmt::format("'{}' must come before '{}' (process[{}]): steps run in the order {}", kind, keys[later],
                             first_at[later], fmt::join(keys, ", ")),
                 node[i]);
      }
    }
    first_at[k] = static_cast<int>(i);
    const quant::StepList parsed =
        quant::parse_process_entry(kind, quant::StepInput{src, step.get(kind), kind_path, recipe.defaults});
    recipe.steps.insert(recipe.steps.end(), parsed.begin(), parsed.end());
  }
  if (first_at[static_cast<std::size_t>(std::find(keys.begin(), keys.end(), "quantize") - keys.begin())] < 0) {
    src.fail(path, "no quantize step: process needs a quantize step listing which linears get which scheme", node);
  }
}

}  // namespace moeslim::recipe::detail
