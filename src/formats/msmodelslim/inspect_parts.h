// The pieces of `inspect` (inspect.h): reading the description file, reading and cross-checking the shards,
// and the per-scheme rules. Internal to the formats library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "formats/msmodelslim/inspect.h"
#include "formats/msmodelslim/scheme_table.h"
#include "io/safetensors_reader.h"

namespace moeslim::formats::msmodelslim::inspect_detail {

using Violations = std::vector<InspectViolation>;

// The layout's registry name, "unknown" for none.
std::string layout_name(std::optional<Layout> layout);

struct Description {
  std::optional<Layout> layout;  // nullopt when the header does not tell
  std::string file_name;
  std::string model_quant_type;
  std::vector<std::pair<std::string, std::string>> entries;  // tensor name -> type, file order
  std::unordered_map<std::string, std::string> type_of;
};

// Finds the description file in `dir` and checks its header keys; nullopt (with a violation) when there is
// none or it is not a JSON object.
std::optional<Description> read_description(const std::filesystem::path& dir, Violations& violations);

// The shards named by the directory's index, opened and cross-checked against it.
class ShardSet {
 public:
  // `expected_base`: the shard base name the layout prescribes ("quant_model_weight_w8a8_dynamic").
  static ShardSet open(const std::filesystem::path& dir, const std::string& expected_base, Violations& violations);

  bool contains(std::string_view name) const { return shard_of_.count(std::string(name)) > 0; }
  const io::TensorInfo& info(const std::string& name) const;
  Tensor tensor(const std::string& name) const;
  void release(const std::string& name) const;

  const std::string& index_file() const { return index_file_; }
  const std::vector<std::string>& shard_names() const { return shard_names_; }
  const std::vector<std::string>& names() const { return names_; }  // every tensor found, shard then file order
  std::uint64_t total_size() const { return total_size_; }

 private:
  std::string index_file_;
  std::vector<std::string> shard_names_;
  std::vector<io::SafetensorsFile> files_;
  std::unordered_map<std::string, std::size_t> shard_of_;  // tensor -> position in files_
  std::vector<std::string> names_;
  std::uint64_t total_size_ = 0;
};

struct RuleContext {
  const LayoutRules& rules;  // the directory's layout (ascendV1's when its header does not tell)
  DType float_dtype;  // the model's: FLOAT tensors, and v0 scales
  const Description& description;
  const ShardSet& shards;
};

// Per-scheme structure and value rules for every described tensor present in the shards, the non-finite
// scan of every float tensor, and the per-type summary.
void check_tensors(const RuleContext& context, InspectReport& report);

}  // namespace moeslim::formats::msmodelslim::inspect_detail
