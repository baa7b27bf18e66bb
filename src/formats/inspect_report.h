// What `moeslim inspect` reports about an output directory, whatever its format: the files found, a summary
// per description type, and every violation of the format by the tensor (or file and key) it concerns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeslim::formats {

struct InspectViolation {
  std::string subject;  // the tensor it is about; a file or "file: key" when it is not about one tensor
  std::string problem;
};

struct InspectTypeSummary {
  std::size_t modules = 0;  // linears of a quantized type; modules with a .weight for FLOAT
  std::size_t tensors = 0;
  std::uint64_t bytes = 0;
};

struct InspectReport {
  std::filesystem::path dir;
  std::string layout;            // the format's registry name ("ascendV1", "mindie", "ascendV1-v1") or "unknown"
  std::string description_file;  // file name; empty when there is none
  std::string model_quant_type;
  DType float_dtype = DType::kBF16;  // the model's float dtype (config.json torch_dtype)
  std::string index_file;
  std::vector<std::string> shard_names;
  std::size_t tensor_count = 0;
  std::uint64_t total_size = 0;                        // bytes of tensor data found in the shards
  std::map<std::string, InspectTypeSummary> by_type;  // description type -> counts
  std::vector<InspectViolation> violations;

  bool ok() const { return violations.empty(); }
};

// The summary table (one row per description type: modules, tensors, bytes) followed by one line per
// violation naming its tensor, and a last line with the verdict.
std::string format_inspect_report(const InspectReport& report);

}  // namespace moeslim::formats
