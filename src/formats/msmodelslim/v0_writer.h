// The W8A8 mixed output of msModelSlim's Qwen3-MoE example (v0 API), in its two layouts: ascendV1 (the
// default save_type; MindIE >= 2.1.RC2 and vLLM-Ascend) and mindie (--mindie_format: the older safe_tensor
// layout for MindIE <= 2.1.RC1 only; vLLM-Ascend cannot load it: it reads only quant_model_description.json,
// would take the layout's config.json quantization_config as the description, and has no parameter for the
// norms' ".module" copies). Tensors per scheme: scheme_table.h; spec sections §1-§4, §6.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/msmodelslim/layout_writer.h"
#include "formats/msmodelslim/scheme_table.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

class V0Writer final : public LayoutWriter {
 public:
  // Writes into `out_dir` (normally OutputDir::temp_path()) in `layout` (kAscendV1 or kMindIE; kInvalidArgument
  // otherwise). `float_dtype` is the model's float dtype, BF16 or F16: FLOAT tensors and the scales are stored
  // in it, and F16 switches deq_scale to its int64 encoding.
  V0Writer(std::filesystem::path out_dir, Layout layout, DType float_dtype,
           std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes);

  // FormatWriter::finish; config.json gains the layout's keys (add_w8a8_quantize_keys). `metadata` is ignored:
  // neither v0 layout has a place for it (msModelSlim's v0 savers record no rotation).
  WrittenOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                       const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) override;

 private:
  // weight, bias (zeros when absent) and, in the MindIE layout, .module.weight/.module.bias.
  std::vector<NamedTensor> norm_tensors(const quant::NormTensors& norm) const override;
  // docs/msmodelslim-format.md §2; w8a8_linear_tensors checks them.
  std::vector<NamedTensor> linear_tensors(const quant::QuantizedLinear& linear) const override;

  bool mindie() const { return rules().layout == Layout::kMindIE; }
};

}  // namespace moeslim::formats::msmodelslim
