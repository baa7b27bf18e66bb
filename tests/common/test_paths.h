// Where tests find their data: the project's own copies (tests/data, models/, data/), so the suite runs
// without ../shared. Tests that compare against the larger shared references use shared_dir() when present.
#pragma once

#include <filesystem>
#include <string>

#include <unistd.h>

namespace moeslim::testing {

inline std::filesystem::path source_dir() { return MOESLIM_SOURCE_DIR; }
inline std::filesystem::path binary_dir() { return MOESLIM_BINARY_DIR; }
inline std::filesystem::path test_data_dir() { return source_dir() / "tests" / "data"; }
inline std::filesystem::path bundled_model_dir() { return source_dir() / "models" / "tiny-qwen3-moe"; }
inline std::filesystem::path bundled_data_dir() { return source_dir() / "data"; }
// The moeslim executable, for CLI tests.
inline std::filesystem::path moeslim_exe() { return binary_dir() / "src" / "cli" / "moeslim"; }

// The two shared tiny models as a GoogleTest parameter list, with valid test-name suffixes.
inline const std::string kSharedTinyModels[] = {"tiny-qwen3-moe", "tiny-qwen3-moe-outliers"};
inline std::string model_param_name(const std::string& model) {
  std::string n = model;
  for (char& ch : n) ch = (ch == '-') ? '_' : ch;
  return n;
}

// A fresh, empty directory under the build tree, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline TempDir::TempDir(const std::string& tag) {
  static int counter = 0;
  path_ = binary_dir() / "test_tmp" /
          (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

inline TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace moeslim::testing
