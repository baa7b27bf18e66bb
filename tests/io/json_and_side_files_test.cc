#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "io/json_file.h"
#include "io/side_files.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;
using testing::expect_error;
using testing::write_bytes;

TEST(JsonFile, ReadsObjectsAndKeepsOrderWhenAsked) {
  TempDir dir("json_file");
  write_bytes(dir.path() / "a.json", R"({"b": 1, "a": [true, null]})");
  const auto j = read_json_file(dir.path() / "a.json");
  EXPECT_EQ(j["b"], 1);
  const auto ordered = read_ordered_json_file(dir.path() / "a.json");
  EXPECT_EQ(ordered.begin().key(), "b");
}

TEST(JsonFile, MissingFileIsAnIoError) {
  TempDir dir("json_file");
  const auto path = dir.path() / "config.json";
  expect_error([&] { read_json_file(path); }, ErrorCode::kIo, path.string(), "", "No such file or directory");
}

TEST(JsonFile, DirectoryIsAnIoError) {
  TempDir dir("json_file");
  expect_error([&] { read_json_file(dir.path()); }, ErrorCode::kIo, dir.path().string(), "", "Is a directory");
}

TEST(JsonFile, InvalidJsonIsAFormatErrorWithLineAndColumn) {
  TempDir dir("json_file");
  const auto path = dir.path() / "config.json";
  write_bytes(path, "{\n  \"a\": 1,\n  \"b\": tru\n}");
  expect_error([&] { read_json_file(path); }, ErrorCode::kFormat, path.string(), "",
               "invalid JSON: line 3, column 11: syntax error while parsing value");
}

TEST(SideFiles, CopiesConfigTokenizerAndCodeButNoWeightsOrIndexes) {
  TempDir src("side_src");
  TempDir dst("side_dst");
  for (const char* name : {"config.json", "tokenizer.json", "tokenizer_config.json", "merges.txt",
                           "chat_template.jinja", "tokenizer.model", "modeling_qwen.py", "model.safetensors",
                           "model-00001-of-00002.safetensors", "model.safetensors.index.json",
                           "quant_model_weight_w8a8_dynamic.safetensors.index.json", "README.md", ".hidden.json"}) {
    write_bytes(src.path() / name, std::string("content of ") + name);
  }
  std::filesystem::create_directories(src.path() / "sub");
  write_bytes(src.path() / "sub" / "nested.json", "{}");

  const auto copied =
      copy_side_files(src.path(), dst.path() / "out", [](const std::string& name) { return name == "config.json"; });
  const std::vector<std::string> expected = {"chat_template.jinja", "merges.txt",      "modeling_qwen.py",
                                             "tokenizer.json",      "tokenizer.model", "tokenizer_config.json"};
  EXPECT_EQ(copied, expected);
  std::vector<std::string> present;
  for (const auto& e : std::filesystem::directory_iterator(dst.path() / "out")) {
    present.push_back(e.path().filename().string());
  }
  std::sort(present.begin(), present.end());
  EXPECT_EQ(present, expected);
  EXPECT_EQ(read_text_file(dst.path() / "out" / "merges.txt"), "content of merges.txt");
}

TEST(SideFiles, MissingSourceDirectory) {
  TempDir dst("side_dst");
  const auto missing = dst.path() / "nowhere";
  expect_error([&] { copy_side_files(missing, dst.path()); }, ErrorCode::kNotFound, missing.string(), "",
               "does not exist");
}

}  // namespace
}  // namespace moeslim::io
