// Recipe names → steps. A recipe's `process` list names each step by its key (rotate, smooth, quantize) and a
// smooth step by its `method`; every quantize group names its weight method (`weight: minmax | ssz | gptq`). Each entry
// points at the parser in the step's own file, which reads and checks its keys and fills their defaults.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "io/yaml_fields.h"
#include "quant/step.h"
#include "quant/weight_method.h"

namespace moeslim::quant {

// Where a step's keys are: the file (errors name it), the node, its key path ("process[1].smooth"), and the
// defaults the recipe's apiversion gives.
struct StepInput {
  const io::yaml::Source& src;
  YAML::Node node;
  std::string path;
  const StepDefaults& defaults;
};

// A process entry's parser. Usually one step; `quantize` adds static activation calibration when a group is
// static.
using StepParser = StepList (*)(const StepInput& input);

struct StepEntry {
  const char* key;      // the process entry's key
  const char* method;   // for `smooth`: the method; "" otherwise
  int order;            // process entries run in ascending order (rotate, smooth, quantize); each key at most once
  StepParser parse;
  const char* summary;  // one line for `moeslim recipes --steps`
};

const std::vector<StepEntry>& step_registry();

// The process keys in order ("rotate", "smooth", "quantize"), for messages.
std::vector<std::string> process_keys();

// Parses one process entry `{key: value}`: `key` must be a registered key; for `smooth`, value.method picks the
// entry. Errors name input.path.
StepList parse_process_entry(const std::string& key, const StepInput& value);

// The steps the command line adds to a recipe: `--rot` (rotate, hadamard) and `--anti_method m4` (m4 over
// norm-linear and ov, α 0.5).
std::shared_ptr<const LayerStep> default_rotate_step();
std::shared_ptr<const LayerStep> default_m4_step();

// A quantize group's weight method: `weight: NAME` picks the entry; the group may also hold the entry's own
// keys (e.g. ssz_steps), and a key of another method is an error that names it.
using WeightMethodParser = std::shared_ptr<const WeightMethod> (*)(const StepInput& group,
                                                                 const io::yaml::MapReader& keys);

struct WeightMethodEntry {
  const char* name;
  std::vector<std::string> keys;  // the group keys it owns
  WeightMethodParser parse;
  const char* summary;
};

const std::vector<WeightMethodEntry>& weight_method_registry();

}  // namespace moeslim::quant
