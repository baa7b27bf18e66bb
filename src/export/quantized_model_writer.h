// What every output layout's writer offers the pipeline: the streaming calls (add_*() in Hugging Face module
// order, each writing its tensors at once) and finish(), and the implementation they share. The pipeline picks a writer by recipe (v0 layouts:
// MsModelSlimWriter; the v1 W4A8 layout: MsModelSlimV1Writer) and then drives it through this interface.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "export/described_shards.h"
#include "export/w8a8_tensors.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::exporter {

struct MsModelSlimOutput {
  io::ShardedWriteSummary shards;
  std::filesystem::path description_path;
  std::vector<std::string> side_files;  // copied from the model directory (config.json is rewritten, not copied)
};

// The shared part of both writers: the shards, the float dtype check, the streaming add_*() calls (each
// layout only says which tensors a norm or a linear becomes) and the once-only finish().
class QuantizedModelWriter {
 public:
  virtual ~QuantizedModelWriter() = default;

  // A float parameter by its full tensor name ("model.embed_tokens.weight", "lm_head.weight"), converted to the
  // model's float dtype (a tensor already in it is written without a copy).
  void add_float(const std::string& tensor_name, const Tensor& tensor);
  void add_norm(const quant::NormTensors& norm);
  void add_linear(const quant::QuantizedLinear& linear);

  // Closes the shards and writes the index, the description, config.json and the side files copied from
  // `model_dir` (the input model). layer_count_written: 0 = all layers, else the count written (recorded as
  // num_hidden_layers). `metadata` (a JSON object, e.g. the rotation applied) goes where the layout has a
  // place for it: the v1 description's "metadata"; the v0 layouts have none and ignore it.
  virtual MsModelSlimOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                                   const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) = 0;

  DType float_dtype() const { return float_dtype_; }

 protected:
  // `float_dtype` must be BF16 or F16 (kInvalidArgument naming out_dir otherwise).
  QuantizedModelWriter(std::filesystem::path out_dir, const std::string& shard_base, DType float_dtype,
                       std::uint64_t max_shard_bytes);

  // The layout's tensors for one norm / one linear, in its order (errors name the tensor).
  virtual std::vector<NamedTensor> norm_tensors(const quant::NormTensors& norm) const = 0;
  virtual std::vector<NamedTensor> linear_tensors(const quant::QuantizedLinear& linear) const = 0;

  // finish()'s first step: kInvalidArgument when called twice; closes the shards.
  io::ShardedWriteSummary close_shards();
  const std::filesystem::path& out_dir() const { return out_dir_; }
  const DescribedShardWriter& shards() const { return tensors_; }

 private:
  void add_all(const std::vector<NamedTensor>& tensors);

  std::filesystem::path out_dir_;
  DType float_dtype_;
  DescribedShardWriter tensors_;
  bool finished_ = false;
};

}  // namespace moeslim::exporter
