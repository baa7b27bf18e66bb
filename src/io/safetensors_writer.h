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

// A tensor a ShardedSafetensorsWriter is told to expect (ShardedSafetensorsWriter::plan).
struct PlannedTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;

  std::uint64_t nbytes() const { return static_cast<std::uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

struct ShardedWriteSummary {
  std::vector<std::string> shard_names;  // file names, in shard order
  std::size_t tensor_count = 0;
  std::uint64_t total_size = 0;          // sum of tensor byte sizes (headers excluded)
  std::vector<std::string> names;        // tensor names in write order
  std::filesystem::path index_path;      // empty in single-file mode
  std::size_t tensors_written_once = 0;  // in shards written in place, as planned (plan())
};

// Output as "<base>-00001-of-0000N.safetensors" + "<base>.safetensors.index.json". Each shard's data streams
// to a temporary file in the directory; closing a shard writes the final file (under a temporary name) from
// it; finish() renames the shards once N is known and writes the index. Destroyed without finish(), the
// writer deletes every temporary file it made.
//
// A shard's header comes first in its file and lists its tensors sorted, so its layout is known only once its
// last tensor is. Without a plan each shard is therefore written twice: streamed, then copied in file order at
// its close. Told every tensor ahead (plan()), the writer lays each shard out when it opens it, writes the
// header, and puts each tensor's bytes at their final offset as they come: each byte is written once.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name,
                           std::uint64_t max_shard_bytes = kDefaultMaxShardBytes, bool sort_within_shard = true);
  ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name, ShardedWriterOptions options);
  ~ShardedSafetensorsWriter();
  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;

  // Every tensor add() will be given, in order; before the first add() (kInvalidArgument after it). While the
  // adds match it (name, dtype, shape), shards are written in place. From the first add that does not, or at
  // a finish() that comes before the plan's end, the writer goes on as without a plan, and the open shard is
  // copied at its close. The files are the same either way.
  void plan(std::vector<PlannedTensor> tensors);

  // Appends a tensor (its bytes are written to disk now). kInvalidArgument on a duplicate name or after
  // finish(); kIo on a write failure.
  void add(const std::string& name, const Tensor& tensor);
  // Closes the last shard, renames the shards to their final names, writes the index (2-space indent,
  // weight_map in write order). With no tensors at all, one empty shard is written.
  ShardedWriteSummary finish();

  std::uint64_t total_size() const { return total_size_; }

 private:
  struct PendingTensor {
    PlannedTensor tensor;
    std::uint64_t temp_offset;  // where its bytes are in the shard's temporary data file
  };
  // A shard file's first bytes (the header and its length) and where each tensor's bytes go in it.
  struct ShardLayout {
    std::string prefix;
    std::vector<std::size_t> file_order;      // indices into the tensors laid out, in file order
    std::vector<std::uint64_t> file_offsets;  // by the tensors' index
  };

  ShardLayout lay_out(const std::vector<PlannedTensor>& tensors) const;
  bool follows_plan(const std::string& name, const Tensor& tensor) const;
  void open_planned_shard();
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
  // The plan, while the adds follow it: the open shard holds plan_[shard_first_, shard_end_), at
  // shard_offsets_ (by index from shard_first_) in data_, which is then the shard file itself.
  std::vector<PlannedTensor> plan_;
  bool following_plan_ = false;
  std::size_t plan_next_ = 0;
  std::size_t shard_first_ = 0, shard_end_ = 0;
  std::vector<std::uint64_t> shard_offsets_;
  std::size_t written_once_ = 0;
};

}  // namespace moeslim::io
