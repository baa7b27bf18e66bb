#include "io/safetensors_writer.h"

#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/log.h"
#include "io/output_file.h"
#include "io/safetensors_header.h"

namespace moeslim::io {
namespace {

// Rejects names the format cannot hold and tensors whose bytes do not match their shape (a default-
// constructed Tensor has shape [] but no data).
void check_writable(const std::string& name, const Tensor& t, const std::string& file) {
  if (name == "__metadata__") {
    throw Error(ErrorCode::kInvalidArgument, "'__metadata__' is reserved and cannot name a tensor", file, name);
  }
  if (t.nbytes() != shape_numel(t.shape()) * dtype_size(t.dtype()) || (t.nbytes() > 0 && t.bytes() == nullptr)) {
    throw Error(ErrorCode::kInvalidArgument, "tensor has no data for shape " + shape_to_string(t.shape()), file, name);
  }
}

// The index as json.dump(indent=2) writes it (and nlohmann's dump(2)), built as text because an ordered_json
// object searches its keys linearly on every insertion and a large model has tens of thousands of tensors.
std::string index_json(std::uint64_t total_size, const std::vector<std::pair<std::string, std::size_t>>& weight_map,
                       const std::vector<std::string>& shard_names) {
  std::string text = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total_size) + "\n  },\n";
  if (weight_map.empty()) return text + "  \"weight_map\": {}\n}";
  text += "  \"weight_map\": {";
  for (std::size_t i = 0; i < weight_map.size(); ++i) {
    text += i == 0 ? "\n    " : ",\n    ";
    text +=
        nlohmann::json(weight_map[i].first).dump() + ": " + nlohmann::json(shard_names[weight_map[i].second]).dump();
  }
  return text + "\n  }\n}";
}

void rename_or_throw(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot rename " + from.string() + " to it: " + ec.message(), to.string());
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorInfo> infos;
  std::unordered_set<std::string> seen;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    check_writable(name, t, path.string());
    if (!seen.insert(name).second) {
      throw Error(ErrorCode::kInvalidArgument, "tensor name given twice", path.string(), name);
    }
    infos.push_back({name, t.dtype(), t.shape(), offset, offset + t.nbytes()});
    offset += t.nbytes();
  }
  const std::string header = build_safetensors_header(infos, metadata);
  std::filesystem::path temp = path;
  temp += ".tmp";
  try {
    OutputFile out(temp);
    out.write(encode_header_length(header.size()));
    out.write(header);
    for (const auto& [name, t] : tensors) out.write(t.bytes(), t.nbytes());
    out.close();
    rename_or_throw(temp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(temp, ec);
    throw;
  }
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name,
                                                   std::uint64_t max_shard_bytes, bool sort_within_shard)
    : ShardedSafetensorsWriter(std::move(directory), std::move(base_name),
                               ShardedWriterOptions{max_shard_bytes, sort_within_shard, {}, {}}) {}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::filesystem::path directory, std::string base_name,
                                                   ShardedWriterOptions options)
    : dir_(std::move(directory)), base_(std::move(base_name)), options_(std::move(options)) {
  if (base_.empty() || base_.find('/') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument, "shard base name must be a non-empty file name", dir_.string(), base_);
  }
  if (options_.max_shard_bytes == 0) {
    throw Error(ErrorCode::kInvalidArgument, "max_shard_bytes must be positive", dir_.string());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create the output directory: " + ec.message(), dir_.string());
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  if (!finished_) remove_temporaries();
}

void ShardedSafetensorsWriter::remove_temporaries() noexcept {
  std::error_code ec;
  if (data_) {
    const auto path = data_->path();
    data_.reset();
    std::filesystem::remove(path, ec);
  }
  for (const auto& p : closed_) std::filesystem::remove(p, ec);
  closed_.clear();
}

std::filesystem::path ShardedSafetensorsWriter::temp_path(std::size_t shard_number, const char* kind) const {
  // Hidden names so that nothing picks up a half-written output as a model file.
  return dir_ / fmt::format(".{}-{:05}.{}.tmp", base_, shard_number, kind);
}

std::string ShardedSafetensorsWriter::final_name(std::size_t shard_number, std::size_t shard_count) const {
  if (!options_.single_file_name.empty()) return options_.single_file_name;
  return fmt::format("{}-{:05}-of-{:05}.safetensors", base_, shard_number, shard_count);
}

void ShardedSafetensorsWriter::plan(std::vector<PlannedTensor> tensors) {
  if (finished_ || !names_.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "plan() after the first add()", dir_.string());
  }
  plan_ = std::move(tensors);
  following_plan_ = true;
}

ShardedSafetensorsWriter::ShardLayout ShardedSafetensorsWriter::lay_out(
    const std::vector<PlannedTensor>& tensors) const {
  ShardLayout layout;
  layout.file_order.resize(tensors.size());
  std::iota(layout.file_order.begin(), layout.file_order.end(), std::size_t{0});
  if (options_.sort_within_shard) {
    std::stable_sort(layout.file_order.begin(), layout.file_order.end(), [&](std::size_t a, std::size_t b) {
      const std::size_t sa = dtype_size(tensors[a].dtype), sb = dtype_size(tensors[b].dtype);
      return sa != sb ? sa > sb : tensors[a].name < tensors[b].name;
    });
  }
  std::vector<TensorInfo> infos;
  std::uint64_t offset = 0;
  for (std::size_t i : layout.file_order) {
    infos.push_back({tensors[i].name, tensors[i].dtype, tensors[i].shape, offset, offset + tensors[i].nbytes()});
    offset += tensors[i].nbytes();
  }
  const std::string header = build_safetensors_header(infos, options_.metadata);
  layout.prefix = encode_header_length(header.size()) + header;
  layout.file_offsets.resize(tensors.size());
  for (std::size_t k = 0; k < infos.size(); ++k)
    layout.file_offsets[layout.file_order[k]] = layout.prefix.size() + infos[k].begin;
  return layout;
}

bool ShardedSafetensorsWriter::follows_plan(const std::string& name, const Tensor& tensor) const {
  if (plan_next_ >= plan_.size()) return false;
  const PlannedTensor& p = plan_[plan_next_];
  return p.name == name && p.dtype == tensor.dtype() && p.shape == tensor.shape();
}

// The planned shard that starts at plan_next_: as far as msModelSlim's rule in add() would take it.
void ShardedSafetensorsWriter::open_planned_shard() {
  const bool sharded = options_.single_file_name.empty();
  shard_first_ = shard_end_ = plan_next_;
  std::uint64_t bytes = 0;
  while (shard_end_ < plan_.size()) {
    const std::uint64_t nbytes = plan_[shard_end_].nbytes();
    if (sharded && shard_end_ > shard_first_ && bytes + nbytes >= options_.max_shard_bytes) break;
    bytes += nbytes;
    ++shard_end_;
  }
  const ShardLayout layout =
      lay_out(std::vector<PlannedTensor>(plan_.begin() + static_cast<std::ptrdiff_t>(shard_first_),
                                         plan_.begin() + static_cast<std::ptrdiff_t>(shard_end_)));
  data_ = std::make_unique<OutputFile>(temp_path(closed_.size() + 1, "data"));
  data_->write(layout.prefix);
  shard_offsets_ = layout.file_offsets;
}

void ShardedSafetensorsWriter::add(const std::string& name, const Tensor& tensor) {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "add() after finish()", dir_.string(), name);
  check_writable(name, tensor, dir_.string());
  if (names_.count(name)) throw Error(ErrorCode::kInvalidArgument, "tensor added twice", dir_.string(), name);
  const std::uint64_t nbytes = tensor.nbytes();
  // Off the plan: the open shard's file becomes a data file like any other, appended to past what it holds.
  // The output is still right, but written twice from here: the plan and the writer's caller disagree.
  if (following_plan_ && !follows_plan(name, tensor)) {
    following_plan_ = false;
    const std::string planned = plan_next_ < plan_.size()
                                    ? plan_[plan_next_].name + " " + std::string(dtype_name(plan_[plan_next_].dtype)) +
                                          " " + shape_to_string(plan_[plan_next_].shape)
                                    : "nothing more";
    log_warn("{}: {} {} {} is not the planned tensor ({}); the rest of the output is written twice", dir_.string(),
             name, dtype_name(tensor.dtype()), shape_to_string(tensor.shape()), planned);
  }
  std::uint64_t offset = 0;
  if (following_plan_) {
    if (plan_next_ == shard_end_) {
      if (data_) close_shard();
      open_planned_shard();
    }
    offset = shard_offsets_[plan_next_ - shard_first_];
    data_->write_at(offset, tensor.bytes(), nbytes);
    ++plan_next_;
  } else {
    // msModelSlim's rule: close the shard *before* the tensor that would bring it to the limit or past it.
    const bool sharded = options_.single_file_name.empty();
    if (sharded && !pending_.empty() && pending_bytes_ + nbytes >= options_.max_shard_bytes) close_shard();
    if (!data_) data_ = std::make_unique<OutputFile>(temp_path(closed_.size() + 1, "data"));
    offset = data_->end();
    data_->write(tensor.bytes(), nbytes);
  }
  names_.insert(name);
  pending_.push_back({{name, tensor.dtype(), tensor.shape()}, offset});
  pending_bytes_ += nbytes;
  weight_map_.emplace_back(name, closed_.size());
  total_size_ += nbytes;
}

void ShardedSafetensorsWriter::close_shard() {
  closed_.push_back(temp_path(closed_.size() + 1, "safetensors"));  // listed first so a failure cleans it up
  if (following_plan_ && data_) {
    // Written in place: the data file is the shard.
    data_->close();
    rename_or_throw(data_->path(), closed_.back());
    data_.reset();
    written_once_ += pending_.size();
  } else {
    std::vector<PlannedTensor> tensors;
    for (const PendingTensor& p : pending_) tensors.push_back(p.tensor);
    const ShardLayout layout = lay_out(tensors);
    OutputFile out(closed_.back());
    out.write(layout.prefix);
    for (std::size_t i : layout.file_order) {
      const std::uint64_t nbytes = tensors[i].nbytes();
      if (nbytes > 0) out.append_range_of(*data_, pending_[i].temp_offset, nbytes);
    }
    out.close();
    if (data_) {
      const auto data_path = data_->path();
      data_.reset();
      std::error_code ec;
      std::filesystem::remove(data_path, ec);
    }
  }
  pending_.clear();
  pending_bytes_ = 0;
}

ShardedWriteSummary ShardedSafetensorsWriter::finish() {
  if (finished_) throw Error(ErrorCode::kInvalidArgument, "finish() called twice", dir_.string());
  if (following_plan_ && plan_next_ < plan_.size()) {  // the plan's last shard is not complete
    following_plan_ = false;
    log_warn("{}: {} planned tensors were not added, from {} on; the last shard is written twice", dir_.string(),
             plan_.size() - plan_next_, plan_[plan_next_].name);
  }
  if (!pending_.empty() || closed_.empty()) close_shard();

  ShardedWriteSummary summary;
  const std::size_t count = closed_.size();
  for (std::size_t i = 0; i < count; ++i) {
    summary.shard_names.push_back(final_name(i + 1, count));
    rename_or_throw(closed_[i], dir_ / summary.shard_names.back());
  }
  closed_.clear();
  finished_ = true;

  summary.tensor_count = weight_map_.size();
  summary.total_size = total_size_;
  summary.tensors_written_once = written_once_;
  for (const auto& [name, shard] : weight_map_) summary.names.push_back(name);
  if (options_.single_file_name.empty()) {
    summary.index_path = dir_ / (base_ + ".safetensors.index.json");
    write_text_file(summary.index_path, index_json(total_size_, weight_map_, summary.shard_names));
  }
  return summary;
}

}  // namespace moeslim::io
