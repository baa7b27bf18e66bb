// The tensor half of every msModelSlim layout: tensors stream into sharded safetensors files as they are
// added, and each one's description type ("FLOAT", "W8A8", ...) is remembered in write order for the
// description file. Shared by the W8A8 (v0) and W4A8 (v1) writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors_writer.h"

namespace moeslim::formats::msmodelslim {

struct DescribedTensor {
  std::string name;
  std::string type;  // the description file's value: "FLOAT", "W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC"
};

class DescribedShardWriter {
 public:
  // Shards "<base_name>-0000i-of-0000N.safetensors" in `directory`, each closed before it would reach
  // `max_shard_bytes`, tensors ordered inside each file by dtype size then name (as msModelSlim does).
  DescribedShardWriter(const std::filesystem::path& directory, const std::string& base_name,
                       std::uint64_t max_shard_bytes);

  // The tensors add() will be given, in order (io::ShardedSafetensorsWriter::plan).
  void plan(std::vector<io::PlannedTensor> tensors) { shards_.plan(std::move(tensors)); }
  // Writes the tensor's bytes now. kInvalidArgument on a duplicate name or after finish().
  void add(const std::string& name, const Tensor& tensor, const std::string& type);
  // Closes the shards and writes the index (see io::ShardedSafetensorsWriter::finish).
  io::ShardedWriteSummary finish();

  const std::vector<DescribedTensor>& entries() const { return entries_; }  // write order

 private:
  io::ShardedSafetensorsWriter shards_;
  std::vector<DescribedTensor> entries_;
};

}  // namespace moeslim::formats::msmodelslim
