#include "io/side_files.h"

#include <algorithm>

#include "core/error.h"

namespace moeslim::io {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_side_file_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  if (ends_with(name, ".safetensors") || ends_with(name, "index.json")) return false;
  for (std::string_view ext : {".json", ".py", ".txt", ".jinja", ".model"}) {
    if (ends_with(name, ext)) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> copy_side_files(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir,
                                         const std::function<bool(const std::string&)>& exclude) {
  std::error_code ec;
  if (!std::filesystem::is_directory(src_dir, ec)) {
    throw Error(ErrorCode::kNotFound, "source directory does not exist", src_dir.string());
  }
  std::filesystem::create_directories(dst_dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create directory: " + ec.message(), dst_dir.string());

  std::vector<std::string> names;
  std::filesystem::directory_iterator it(src_dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot list directory: " + ec.message(), src_dir.string());
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!is_side_file_name(name) || !entry.is_regular_file(ec)) continue;
    if (exclude && exclude(name)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::filesystem::copy_file(src_dir / name, dst_dir / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec)
      throw Error(ErrorCode::kIo, "cannot copy to " + (dst_dir / name).string() + ": " + ec.message(),
                  (src_dir / name).string());
  }
  return names;
}

}  // namespace moeslim::io
