// inspect: the shard index and the shards (docs/msmodelslim-format.md §1).
#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/msmodelslim/inspect_parts.h"
#include "io/json_file.h"

namespace moeslim::formats::msmodelslim::inspect_detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexSuffix = ".safetensors.index.json";
constexpr std::uint64_t kMaxShardBytes = 4ull << 30;  // msModelSlim's part_file_size = 4 (GiB)

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "<base>-0000i-of-0000N.safetensors" with 1 <= i <= N == shard_count.
bool is_shard_name(const std::string& name, const std::string& base, std::size_t shard_count) {
  const std::string pattern_prefix = base + "-";
  if (name.size() != pattern_prefix.size() + 14 + 12 || name.compare(0, pattern_prefix.size(), pattern_prefix) != 0 ||
      !ends_with(name, ".safetensors")) {
    return false;
  }
  const std::string middle = name.substr(pattern_prefix.size(), 14);  // "00001-of-00003"
  if (middle.substr(5, 4) != "-of-" || middle.substr(0, 5).find_first_not_of("0123456789") != std::string::npos ||
      middle.substr(9).find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const auto i = std::stoul(middle.substr(0, 5));
  const auto n = std::stoul(middle.substr(9));
  return i >= 1 && i <= n && n == shard_count;
}

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

}  // namespace

const io::TensorInfo& ShardSet::info(const std::string& name) const { return files_.at(shard_of_.at(name)).info(name); }
Tensor ShardSet::tensor(const std::string& name) const { return files_.at(shard_of_.at(name)).tensor(name); }
void ShardSet::release(const std::string& name) const { files_.at(shard_of_.at(name)).release(name); }

ShardSet ShardSet::open(const fs::path& dir, const std::string& expected_base, Violations& violations) {
  ShardSet set;
  std::vector<std::string> index_files;
  std::set<std::string> safetensors_files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (ends_with(name, kIndexSuffix)) index_files.push_back(name);
    if (ends_with(name, ".safetensors")) safetensors_files.insert(name);
  }
  std::sort(index_files.begin(), index_files.end());
  const std::string expected_index = expected_base + kIndexSuffix;
  if (index_files.empty()) {
    violations.push_back({dir.string(), "no shard index (" + expected_index + ")"});
    return set;
  }
  set.index_file_ = std::find(index_files.begin(), index_files.end(), expected_index) != index_files.end()
                        ? expected_index
                        : index_files.front();
  if (index_files.size() > 1) {
    violations.push_back({dir.string(), fmt::format("{} shard indexes; exactly one is expected (checking {})",
                                                    index_files.size(), set.index_file_)});
  }
  if (set.index_file_ != expected_index) {
    violations.push_back({set.index_file_, "this layout's index is named " + expected_index});
  }
  const std::string base = set.index_file_.substr(0, set.index_file_.size() - std::string_view(kIndexSuffix).size());

  // The index: {"metadata": {"total_size": S}, "weight_map": {tensor: shard}}. Order does not matter here.
  nlohmann::json index;
  try {
    index = io::read_json_file(dir / set.index_file_);
  } catch (const Error& e) {
    violations.push_back({set.index_file_, e.what()});
    return set;
  }
  const bool has_total = index.is_object() && index.contains("metadata") && index["metadata"].is_object() &&
                         index["metadata"].contains("total_size") &&
                         index["metadata"]["total_size"].is_number_unsigned();
  if (!has_total) violations.push_back({set.index_file_ + ": metadata.total_size", "missing or not an integer"});
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    violations.push_back({set.index_file_ + ": weight_map", "missing or not an object"});
    return set;
  }
  std::map<std::string, std::string> shard_in_index;  // tensor -> shard
  std::map<std::string, std::vector<std::string>> tensors_of_shard;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>())) {
      violations.push_back({tensor, set.index_file_ + " maps it to " + shard.dump() + ", not a file name"});
      continue;
    }
    shard_in_index[tensor] = shard.get<std::string>();
    tensors_of_shard[shard.get<std::string>()].push_back(tensor);
  }

  for (const auto& [shard, tensors] : tensors_of_shard) {
    if (!is_shard_name(shard, base, tensors_of_shard.size())) {
      violations.push_back({shard, fmt::format("shard names must read {}-0000i-of-{:05}.safetensors", base,
                                               tensors_of_shard.size())});
    }
    if (!safetensors_files.count(shard)) {
      violations.push_back({tensors.front(), fmt::format("{} maps it (and {} more) to {}, which does not exist",
                                                         set.index_file_, tensors.size() - 1, shard)});
      continue;
    }
    try {
      set.files_.push_back(io::SafetensorsFile::open(dir / shard));
    } catch (const Error& e) {
      violations.push_back({e.field().empty() ? shard : e.field(), e.what()});
      continue;
    }
    set.shard_names_.push_back(shard);
  }
  for (const std::string& file : safetensors_files) {
    if (!tensors_of_shard.count(file)) {
      violations.push_back({file, "a safetensors file that " + set.index_file_ + " does not list"});
    }
  }

  for (std::size_t s = 0; s < set.files_.size(); ++s) {
    const io::SafetensorsFile& file = set.files_[s];
    const std::string& shard = set.shard_names_[s];
    std::uint64_t shard_bytes = 0;
    for (const io::TensorInfo& t : file.tensors()) {
      shard_bytes += t.nbytes();
      const auto mapped = shard_in_index.find(t.name);
      if (mapped == shard_in_index.end()) {
        violations.push_back({t.name, "stored in " + shard + " but absent from " + set.index_file_});
      } else if (mapped->second != shard) {
        violations.push_back({t.name, "stored in " + shard + " but " + set.index_file_ + " maps it to " +
                                          mapped->second});
      }
      if (!set.shard_of_.emplace(t.name, s).second) {
        violations.push_back({t.name, "stored in more than one shard (" + set.shard_names_[set.shard_of_[t.name]] +
                                          ", " + shard + ")"});
        continue;
      }
      set.names_.push_back(t.name);
      set.total_size_ += t.nbytes();
    }
    if (shard_bytes >= kMaxShardBytes && file.tensors().size() > 1) {
      violations.push_back({shard, fmt::format("holds {} bytes of tensors; shards are closed before reaching 4 GiB",
                                               shard_bytes)});
    }
    for (const std::string& tensor : tensors_of_shard.at(shard)) {
      if (!file.contains(tensor)) {
        violations.push_back({tensor, set.index_file_ + " maps it to " + shard + ", whose header lacks it"});
      }
    }
  }
  if (has_total) {
    const auto declared = index["metadata"]["total_size"].get<std::uint64_t>();
    if (declared != set.total_size_) {
      violations.push_back({set.index_file_ + ": metadata.total_size",
                            fmt::format("is {} but the shards hold {} bytes of tensor data", declared,
                                        set.total_size_)});
    }
  }
  return set;
}

}  // namespace moeslim::formats::msmodelslim::inspect_detail
