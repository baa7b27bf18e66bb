// The part every msModelSlim layout's writer shares: the shards, the float dtype check, the streaming add_*()
// calls (each layout only says which tensors a norm or a linear becomes) and the once-only finish(). The
// layouts: V0Writer (ascendV1, mindie) and V1Writer (ascendV1-v1).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/format.h"
#include "formats/msmodelslim/described_shards.h"
#include "formats/msmodelslim/scheme_table.h"
#include "io/safetensors_writer.h"
#include "quant/quant_types.h"

namespace moeslim::formats::msmodelslim {

class LayoutWriter : public FormatWriter {
 public:
  void add_float(const std::string& tensor_name, const Tensor& tensor) override;
  void add_norm(const quant::NormTensors& norm) override;
  void add_linear(const quant::QuantizedLinear& linear) override;
  void plan(std::vector<io::PlannedTensor> tensors) override;

  DType float_dtype() const { return float_dtype_; }

 protected:
  // `float_dtype` must be BF16 or F16 (kInvalidArgument naming out_dir otherwise).
  LayoutWriter(std::filesystem::path out_dir, const LayoutRules& rules, DType float_dtype,
               std::uint64_t max_shard_bytes);

  // The layout's tensors for one norm / one linear, in its order (errors name the tensor).
  virtual std::vector<NamedTensor> norm_tensors(const quant::NormTensors& norm) const = 0;
  virtual std::vector<NamedTensor> linear_tensors(const quant::QuantizedLinear& linear) const = 0;

  // finish()'s first step: kInvalidArgument when called twice; closes the shards.
  io::ShardedWriteSummary close_shards();
  // finish()'s last step: the log line saying what was written where.
  void log_written(const WrittenOutput& written) const;
  const std::filesystem::path& out_dir() const { return out_dir_; }
  const DescribedShardWriter& shards() const { return tensors_; }
  const LayoutRules& rules() const { return rules_; }

 private:
  void add_all(const std::vector<NamedTensor>& tensors);

  std::filesystem::path out_dir_;
  const LayoutRules& rules_;
  DType float_dtype_;
  DescribedShardWriter tensors_;
  bool finished_ = false;
};

}  // namespace moeslim::formats::msmodelslim
