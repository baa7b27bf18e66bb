// quant_model_description*.json: a flat JSON object naming every tensor's quantization type, with a few
// header keys before and/or after the tensor entries (where they go differs by layout; see
// docs/msmodelslim-format.md §3-§5).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/msmodelslim/described_shards.h"

namespace moeslim::formats::msmodelslim {

// A member of the description object that is not a tensor entry: "version", "group_size", ...
using DescriptionKey = std::pair<std::string, nlohmann::ordered_json>;

// The file's text exactly as Python's json.dump(obj, f, indent=4) writes it (ASCII-escaped, no trailing
// newline): `head`, then the tensors in write order, then `tail`. Built as text rather than as an
// ordered_json object, whose key lookup is linear: a 235B model has over 100,000 entries.
std::string render_description(const std::vector<DescriptionKey>& head, const std::vector<DescribedTensor>& tensors,
                               const std::vector<DescriptionKey>& tail);

// Writes render_description(...) to `path` (kIo naming the path on failure).
void write_description(const std::filesystem::path& path, const std::vector<DescriptionKey>& head,
                       const std::vector<DescribedTensor>& tensors, const std::vector<DescriptionKey>& tail);

}  // namespace moeslim::formats::msmodelslim
