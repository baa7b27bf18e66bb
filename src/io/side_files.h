// Copying a model directory's non-weight files (config, tokenizer, generation config, chat template, custom
// modelling code) into an output directory.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace moeslim::io {

// Copies every top-level *.json, *.py, *.txt, *.jinja and *.model regular file (symlinks followed, as in a
// Hugging Face cache snapshot) of `src_dir` into `dst_dir` (created if needed, existing files overwritten),
// except weight files (*.safetensors), shard indexes (*index.json), hidden files and names for which
// `exclude` returns true (e.g. "config.json", which the caller rewrites). Returns the copied file names,
// sorted. kNotFound if `src_dir` is not a directory, kIo if a copy fails.
std::vector<std::string> copy_side_files(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir,
                                         const std::function<bool(const std::string&)>& exclude = {});

}  // namespace moeslim::io
