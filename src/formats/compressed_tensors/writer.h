// Writes a quantized model as a compressed-tensors checkpoint (docs/compressed-tensors.md §2), streaming:
//   model-0000k-of-0000N.safetensors + model.safetensors.index.json, Hugging Face's names;
//   a quantized linear "<module>" as ct_linear_tensors lays it out (quantization_config.h): W8A8_DYNAMIC and
//     W4A8_DYNAMIC int-quantized, `weight` I8 [out, in] (int8 codes, or int4 codes one per byte: what vLLM's
//     W8A8 and W4A8 int schemes read) and `weight_scale` [out, 1]; W4A16 pack-quantized, `weight_packed` (eight
//     int4 codes an int32 word, int4_words.h), `weight_scale` [out, groups], `weight_shape` and, asymmetric,
//     `weight_zero_point`. Scales in the model's float dtype (values exact in it, as the quantizers make them);
//   float tensors (embedding, norms, routers, linears left float, lm_head) in the model's float dtype, by
//     their checkpoint names;
//   config.json: the input's, with `quantization_config` (quantization_config.h) made at finish() from the
//     linears written, 2-space indented as transformers writes it; the input's side files.
// Refused with kUnsupported, naming the tensor: a linear's or a norm's bias (m4's shift: vLLM's Qwen3-MoE
// has no place for it), and schemes the format has no form of.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "formats/format.h"
#include "io/safetensors_writer.h"

namespace moeslim::formats::compressed_tensors {

class CtWriter final : public FormatWriter {
 public:
  // `float_dtype`: BF16 or F16 (kInvalidArgument naming out_dir otherwise).
  CtWriter(std::filesystem::path out_dir, DType float_dtype,
           std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes);

  void add_float(const std::string& tensor_name, const Tensor& tensor) override;
  void add_norm(const quant::NormTensors& norm) override;
  void add_linear(const quant::QuantizedLinear& linear) override;
  void plan(std::vector<io::PlannedTensor> tensors) override;
  // `metadata` has no place in this format and is ignored.
  WrittenOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                       const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) override;

 private:
  void add(const std::string& name, const Tensor& tensor);

  std::filesystem::path out_dir_;
  DType float_dtype_;
  io::ShardedSafetensorsWriter shards_;
  std::map<std::string, LinearPlan> written_;  // the quantized linears, by module
  bool finished_ = false;
};

}  // namespace moeslim::formats::compressed_tensors
