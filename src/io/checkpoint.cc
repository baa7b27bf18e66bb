#include "io/checkpoint.h"

#include <map>
#include <mutex>

#include "core/error.h"
#include "io/json_file.h"

namespace moeslim::io {
namespace {

constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

struct Shard {
  std::string file_name;
  std::filesystem::path path;
  std::vector<std::string> indexed_names;  // what the index maps to this shard, in index order
  std::unique_ptr<SafetensorsFile> file;   // null until first needed
  bool checked = false;                    // header compared with the index
};

// A shard file name from the index must stay inside the model directory.
void check_shard_file_name(const std::string& shard, const std::string& tensor, const std::string& index_file) {
  const std::filesystem::path p(shard);
  bool escapes = shard.empty() || p.is_absolute();
  for (const auto& part : p) escapes = escapes || part == "..";
  if (escapes) {
    throw Error(ErrorCode::kFormat,
                "weight_map names shard '" + shard + "', which is not a file in the model directory", index_file,
                tensor);
  }
}

}  // namespace

struct Checkpoint::Impl {
  std::filesystem::path dir;
  std::filesystem::path index_path;  // empty for a single-file checkpoint
  std::vector<Shard> shards;         // sorted by file name
  std::vector<std::string> names;    // index order
  std::map<std::string, std::size_t, std::less<>> shard_of;
  std::mutex mutex;  // guards lazy opening of shards

  std::size_t shard_index(std::string_view name) const {
    const auto it = shard_of.find(name);
    if (it == shard_of.end()) {
      throw Error(ErrorCode::kNotFound, "no such tensor in the checkpoint", dir.string(), std::string(name));
    }
    return it->second;
  }

  // The shard's header, opened and checked against the index on first use.
  const SafetensorsFile& header_of(std::size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    SafetensorsFile& file = map_shard(i);
    if (!shards[i].checked) {
      check_against_index(i);
      shards[i].checked = true;
    }
    return file;
  }

  // Caller holds the mutex.
  SafetensorsFile& map_shard(std::size_t i) {
    Shard& s = shards[i];
    if (!s.file) s.file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(s.path));
    return *s.file;
  }

  // Every tensor the index maps here must be in the header, and every tensor in the header must be mapped
  // here; anything else means a stale index or a tensor stored twice. Caller holds the mutex.
  void check_against_index(std::size_t i) {
    const Shard& s = shards[i];
    const SafetensorsFile& file = *s.file;
    const std::string index_name = index_path.filename().string();
    for (const std::string& name : s.indexed_names) {
      if (!file.contains(name)) {
        throw Error(ErrorCode::kFormat, index_name + " maps this tensor to " + s.file_name + ", whose header lacks it",
                    s.path.string(), name);
      }
    }
    for (const TensorInfo& t : file.tensors()) {
      const auto it = shard_of.find(t.name);
      if (it == shard_of.end()) {
        throw Error(ErrorCode::kFormat, "tensor is in the shard's header but not in " + index_name, s.path.string(),
                    t.name);
      }
      if (it->second == i) continue;
      const Shard& other = shards[it->second];
      if (map_shard(it->second).contains(t.name)) {
        throw Error(ErrorCode::kFormat, "tensor is stored in two shards: " + s.file_name + " and " + other.file_name,
                    s.path.string(), t.name);
      }
      throw Error(ErrorCode::kFormat,
                  "tensor is stored in " + s.file_name + " but " + index_name + " maps it to " + other.file_name +
                      ", which lacks it",
                  s.path.string(), t.name);
    }
  }
};

namespace {

// weight_map from the index, in file order, checked for shape: {tensor name: shard file name}.
std::vector<std::pair<std::string, std::string>> read_weight_map(const std::filesystem::path& index_path) {
  const std::string file = index_path.string();
  const nlohmann::ordered_json index = read_ordered_json_file(index_path);
  if (!index.is_object()) throw Error(ErrorCode::kFormat, "index is not a JSON object", file);
  const auto it = index.find("weight_map");
  if (it == index.end()) throw Error(ErrorCode::kFormat, "index has no 'weight_map'", file, "weight_map");
  if (!it->is_object()) {
    throw Error(ErrorCode::kFormat, std::string("'weight_map' is not an object but ") + it->type_name(), file,
                "weight_map");
  }
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& [name, shard] : it->items()) {
    if (!shard.is_string()) {
      throw Error(ErrorCode::kFormat, "weight_map value is not a shard file name: " + shard.dump(), file, name);
    }
    check_shard_file_name(shard.get<std::string>(), name, file);
    entries.emplace_back(name, shard.get<std::string>());
  }
  return entries;
}

}  // namespace

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::open(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    throw Error(ErrorCode::kNotFound, "model directory does not exist", dir.string());
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    throw Error(ErrorCode::kInvalidArgument, "model path is not a directory", dir.string());
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;

  if (std::filesystem::exists(dir / kSingleFileName, ec)) {
    Shard s;
    s.file_name = kSingleFileName;
    s.path = dir / kSingleFileName;
    s.file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(s.path));
    s.checked = true;  // no index to disagree with
    for (const TensorInfo& t : s.file->tensors()) {
      impl->names.push_back(t.name);
      impl->shard_of.emplace(t.name, 0);
    }
    impl->shards.push_back(std::move(s));
    return Checkpoint(std::move(impl));
  }

  impl->index_path = dir / kIndexFileName;
  if (!std::filesystem::exists(impl->index_path, ec)) {
    throw Error(ErrorCode::kNotFound,
                std::string("no ") + kSingleFileName + " or " + kIndexFileName + " in the model directory",
                dir.string());
  }
  const auto weight_map = read_weight_map(impl->index_path);

  std::map<std::string, std::size_t> shard_number;  // sorted by file name
  for (const auto& [name, shard] : weight_map) shard_number.emplace(shard, 0);
  for (auto& [shard, number] : shard_number) {
    number = impl->shards.size();
    Shard s;
    s.file_name = shard;
    s.path = dir / shard;
    impl->shards.push_back(std::move(s));
  }
  for (const auto& [name, shard] : weight_map) {
    const std::size_t i = shard_number.at(shard);
    impl->names.push_back(name);
    impl->shard_of.emplace(name, i);
    impl->shards[i].indexed_names.push_back(name);
  }
  // Existence only: mapping and parsing a shard waits until it is needed.
  for (const Shard& s : impl->shards) {
    if (!std::filesystem::is_regular_file(s.path, ec)) {
      throw Error(ErrorCode::kNotFound,
                  "shard listed in " + std::string(kIndexFileName) + " is missing (it should hold this tensor and " +
                      std::to_string(s.indexed_names.size() - 1) + " more)",
                  s.path.string(), s.indexed_names.front());
    }
  }
  return Checkpoint(std::move(impl));
}

bool Checkpoint::contains(std::string_view name) const { return impl_->shard_of.count(name) != 0; }

const TensorInfo& Checkpoint::info(std::string_view name) const {
  return impl_->header_of(impl_->shard_index(name)).info(name);
}

Tensor Checkpoint::tensor(std::string_view name) const {
  return impl_->header_of(impl_->shard_index(name)).tensor(name);
}

void Checkpoint::release(std::string_view name) const { impl_->header_of(impl_->shard_index(name)).release(name); }

void Checkpoint::prefetch(std::string_view name) const { impl_->header_of(impl_->shard_index(name)).prefetch(name); }

std::filesystem::path Checkpoint::shard_path_of(std::string_view name) const {
  return impl_->shards[impl_->shard_index(name)].path;
}

std::vector<std::string> Checkpoint::names() const { return impl_->names; }

std::vector<std::string> Checkpoint::names_with_prefix(std::string_view prefix) const {
  std::vector<std::string> out;
  for (const std::string& name : impl_->names) {
    if (std::string_view(name).substr(0, prefix.size()) == prefix) out.push_back(name);
  }
  return out;
}

const std::filesystem::path& Checkpoint::dir() const { return impl_->dir; }

bool Checkpoint::is_sharded() const { return !impl_->index_path.empty(); }

std::vector<ShardStats> Checkpoint::shard_stats() const {
  std::vector<ShardStats> stats;
  for (std::size_t i = 0; i < impl_->shards.size(); ++i) {
    const SafetensorsFile& file = impl_->header_of(i);
    ShardStats s{impl_->shards[i].file_name, file.tensors().size(), 0};
    for (const TensorInfo& t : file.tensors()) s.bytes += t.nbytes();
    stats.push_back(std::move(s));
  }
  return stats;
}

}  // namespace moeslim::io
