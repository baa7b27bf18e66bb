#include "formats/msmodelslim/described_shards.h"

namespace moeslim::formats::msmodelslim {

DescribedShardWriter::DescribedShardWriter(const std::filesystem::path& directory, const std::string& base_name,
                                           std::uint64_t max_shard_bytes)
    : shards_(directory, base_name, io::ShardedWriterOptions{max_shard_bytes, /*sort_within_shard=*/true, {}, {}}) {}

void DescribedShardWriter::add(const std::string& name, const Tensor& tensor, const std::string& type) {
  shards_.add(name, tensor);  // throws before anything is recorded
  entries_.push_back({name, type});
}

io::ShardedWriteSummary DescribedShardWriter::finish() { return shards_.finish(); }

}  // namespace moeslim::formats::msmodelslim
