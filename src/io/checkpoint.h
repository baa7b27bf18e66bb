// A Hugging Face model directory's weights: a single model.safetensors, or model.safetensors.index.json plus
// the shards it names. Shards are mapped lazily, when one of their tensors (or its header) is first needed,
// and stay mapped; opening a shard checks it against the index. Safe to use from several threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors_reader.h"

namespace moeslim::io {

struct ShardStats {
  std::string file_name;
  std::size_t tensor_count = 0;
  std::uint64_t bytes = 0;  // tensor data bytes (headers excluded)
};

class Checkpoint {
 public:
  // Reads the index (or the single file's header) and checks that every shard it lists exists.
  // kNotFound: the directory, both weight files, or a listed shard missing; kFormat: a bad index.
  // Like transformers, model.safetensors wins when both it and an index are present.
  static Checkpoint open(const std::filesystem::path& dir);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  bool contains(std::string_view name) const;
  // The following throw kNotFound (naming the directory and tensor) for an unknown name, and whatever
  // opening its shard throws: kFormat when the shard's header disagrees with the index.
  const TensorInfo& info(std::string_view name) const;
  Tensor tensor(std::string_view name) const;  // a read-only view into the shard's mapping
  void release(std::string_view name) const;   // drop the tensor's pages (e.g. after its layer is done)
  void prefetch(std::string_view name) const;  // ask the kernel to read the tensor's pages ahead
  std::filesystem::path shard_path_of(std::string_view name) const;

  std::vector<std::string> names() const;  // index order (data order for a single file)
  std::vector<std::string> names_with_prefix(std::string_view prefix) const;  // e.g. "model.layers.3."
  const std::filesystem::path& dir() const;
  bool is_sharded() const;  // true when loaded through an index
  // One entry per shard, sorted by file name; opens (and checks) every shard's header.
  std::vector<ShardStats> shard_stats() const;

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeslim::io
