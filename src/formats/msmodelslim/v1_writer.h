// The W4A8 mixed output of msModelSlim's v1 one-click path (`ascendv1_saver`), the ascendV1-v1 layout:
// streamed like V0Writer, each add_*() writing its tensors to the shards at once. Tensors per scheme:
// scheme_table.h.
//
// What differs from the v0 (W8A8) writer: shards "quant_model_weights-0000i-of-0000N.safetensors"; scales and
// offsets in float32; int4 experts packed two codes per byte with a scale_bias; norms without a bias; the
// description's header keys after the tensor entries (version, model_quant_type "W8A8_DYNAMIC", metadata,
// group_size, optional); config.json without "quantization_config" and without a "quantize" key. Built from the
// same parts as the v0 writer (LayoutWriter, render_description, write_edited_config).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "formats/msmodelslim/layout_writer.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

class V1Writer final : public LayoutWriter {
 public:
  // Writes into `out_dir` (normally OutputDir::temp_path()). `float_dtype` (BF16 or F16) is the model's float
  // dtype, in which FLOAT tensors and norms are stored. Shards close before reaching `max_shard_bytes`
  // (msModelSlim's part_file_size 4 = 4 GiB by default).
  V1Writer(std::filesystem::path out_dir, DType float_dtype, std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes);

  // FormatWriter::finish; `metadata` (kInvalidArgument unless an object) becomes the description's "metadata"
  // value, where a rotated model records its rotation, and config.json loses any "quantization_config".
  WrittenOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                       const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) override;

 private:
  // The weight only; w4a8_norm_tensors refuses a nonzero bias.
  std::vector<NamedTensor> norm_tensors(const quant::NormTensors& norm) const override;
  // kFloat: weight (and bias) as FLOAT; kW8A8Dynamic / kW4A8Dynamic: w4a8_linear_tensors; kW8A8: kUnsupported.
  std::vector<NamedTensor> linear_tensors(const quant::QuantizedLinear& linear) const override;
};

}  // namespace moeslim::formats::msmodelslim
