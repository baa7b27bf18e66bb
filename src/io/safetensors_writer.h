// Writing safetensors files: whole small files in one call, and the quantizer's sharded output, which
// streams tensor data to disk as it is produced and never holds a shard in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace moeslim::io {

class OutputFile;

// Writes one safetensors file with the tensors in the given order (compact header, `__metadata__` only if
// `metadata` is non-empty, data 8-byte aligned). Written to "<path>.tmp" and renamed, so a failed write
// leaves no partial file. kInvalidArgument on a duplicate name, kIo on a write failure.
void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

inline constexpr std::uint64_t kDefaultMaxShardBytes = 4ull << 30;  // msModelSlim's 4 GiB

struct ShardedWriterOptions {
  // A shard is closed before adding a tensor that would bring its data to >= this many bytes.
  std::uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  // Order tensors inside each file by dtype size (descending), then name, as the reference writer does;
  // false keeps write order.
  bool sort_within_shard = true;
  // Non-empty: write exactly one file with this name, no size limit and no index.
  std::string single_file_name;
  // Written as `__metadata__` in every file when non-empty.
  std::map<std::string, std::string> metadata;
};

struct ShardedWriteSummary {
  std::vector<std::string> shard_names;  // file names, in shard order
  std::size_t tensor_count = 0;
  std::uint64_t total_size = 0;      // sum of tensor byte sizes (headers excluded)
  std::vector<std::string> names;    // tensor names in write order
  std::filesystem::path index_path;  // empty in single-file mode
};

// Output as "<base>-00001-of-0000N.safetensors" + "<base>.safetensors.index.json". Each shard's data streams
// to a temporary file in the directory; closing a shard writes the final file (under a temporary name) from
// it; finish() renames the shards once N is known and writes the index. Destroyed without finish(), the
// writer deletes every temporary file it made.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name,
                           std::uint64_t max_shard_bytes = kDefaultMaxShardBytes, bool sort_within_shard = true);
  ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name, ShardedWriterOptions options);
  ~ShardedSafetensorsWriter();
  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;

  // Appends a tensor (its bytes are written to disk now). kInvalidArgument on a duplicate name or after
  // finish(); kIo on a write failure.
  void add(const std::string& name, const Tensor& tensor);
  // Closes the last shard, renames the shards to their final names, writes the index (2-space indent,
  // weight_map in write order). With no tensors at all, one empty shard is written.
  ShardedWriteSummary finish();

  std::uint64_t total_size() const { return total_size_; }

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    Shape shape;
    std::uint64_t temp_offset;  // where its bytes are in the shard's temporary data file
    std::uint64_t nbytes;
  };

  void close_shard();
  std::filesystem::path temp_path(std::size_t shard_number, const char* kind) const;
  std::string final_name(std::size_t shard_number, std::size_t shard_count) const;
  void remove_temporaries() noexcept;

  std::filesystem::path dir_;
  std::string base_;
  ShardedWriterOptions options_;
  std::unique_ptr<OutputFile> data_;  // the open shard's data; null until its first tensor
  std::vector<PendingTensor> pending_;
  std::uint64_t pending_bytes_ = 0;
  std::vector<std::filesystem::path> closed_;                    // finished shard files, still under temporary names
  std::vector<std::pair<std::string, std::size_t>> weight_map_;  // name -> 0-based shard, write order
  std::unordered_set<std::string> names_;
  std::uint64_t total_size_ = 0;
  bool finished_ = false;
};

}  // namespace moeslim::io
