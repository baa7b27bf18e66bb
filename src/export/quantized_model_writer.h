// What every output layout's writer offers the pipeline: the streaming calls (add_*() in Hugging Face module
// order, each writing its tensors at once) and finish(). The pipeline picks a writer by recipe (v0 layouts:
// MsModelSlimWriter; the v1 W4A8 layout: MsModelSlimV1Writer) and then drives it through this interface.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::exporter {

struct MsModelSlimOutput {
  io::ShardedWriteSummary shards;
  std::filesystem::path description_path;
  std::vector<std::string> side_files;  // copied from the model directory (config.json is rewritten, not copied)
};

class QuantizedModelWriter {
 public:
  virtual ~QuantizedModelWriter() = default;

  // A float parameter by its full tensor name ("model.embed_tokens.weight", "lm_head.weight"), in the
  // model's float dtype.
  virtual void add_float(const std::string& tensor_name, const Tensor& tensor) = 0;
  virtual void add_norm(const quant::NormTensors& norm) = 0;
  virtual void add_linear(const quant::QuantizedLinear& linear) = 0;

  // Closes the shards and writes the index, the description, config.json and the side files copied from
  // `model_dir` (the input model). layer_count_written: 0 = all layers, else the count written (recorded as
  // num_hidden_layers). `metadata` (a JSON object, e.g. the rotation applied) goes where the layout has a
  // place for it: the v1 description's "metadata"; the v0 layouts have none and ignore it.
  virtual MsModelSlimOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                   const nlohmann::ordered_json& metadata) = 0;
};

}  // namespace moeslim::exporter
