// The W8A8 mixed output of msModelSlim's Qwen3-MoE example (docs/msmodelslim-format.md §1-§4, §6),
// written as the pipeline produces it: each add_*() streams its tensors to the shards at once, so no more
// than one module is ever held here. Call the add_*() methods in Hugging Face module order
// (model.named_modules()), then finish().
//
// The W4A8 layout (§5) differs in shard base name, scale dtypes, int4 packing, description key placement
// and config edits; it has its own writer built from the same parts (msmodelslim_v1_writer.h), not a mode
// of this class.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "export/described_shards.h"
#include "export/quantized_model_writer.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::exporter {

enum class SaveFormat {
  kAscendV1,  // msModelSlim's default save_type "ascendV1" (MindIE >= 2.1.RC2, vLLM-Ascend)
  kMindIE,    // --mindie_format: the older "safe_tensor" layout (MindIE <= 2.1.RC1)
};

class MsModelSlimWriter final : public QuantizedModelWriter {
 public:
  // Writes into `out_dir` (normally OutputDir::temp_path()). `float_dtype` is the model's float dtype, BF16
  // or F16: FLOAT tensors and the scales are stored in it, and F16 switches deq_scale to its int64 encoding.
  MsModelSlimWriter(std::filesystem::path out_dir, SaveFormat format, DType float_dtype,
                    std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes);

  // Closes the shards and writes the index, the description file, config.json (the input's with the
  // layout's keys; num_hidden_layers = layer_count_written when 0 < it < the input's, see
  // set_written_layer_count) and copies of the input's side files. `model_dir` is the input model.
  // `metadata` is ignored: neither v0 layout has a place for it (msModelSlim's v0 savers record no rotation).
  MsModelSlimOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                           const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) override;

  SaveFormat format() const { return format_; }

 private:
  // weight, bias (zeros when absent) and, in the MindIE layout, .module.weight/.module.bias.
  std::vector<NamedTensor> norm_tensors(const quant::NormTensors& norm) const override;
  // The linear's tensors of §2 (see w8a8_linear_tensors for the checks).
  std::vector<NamedTensor> linear_tensors(const quant::QuantizedLinear& linear) const override;

  SaveFormat format_;
};

}  // namespace moeslim::exporter
