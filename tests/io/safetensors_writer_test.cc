#include "io/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/test_paths.h"
#include "io/json_file.h"
#include "io/output_file.h"
#include "io/safetensors_reader.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;
using testing::expect_error;
using testing::patterned;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0);
}

std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::vector<std::string> names_in_file_order(const SafetensorsFile& f) {
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  return names;
}

TEST(WriteSafetensors, RoundTripsEveryDtypeWithMetadata) {
  TempDir dir("writer");
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"bf16", patterned(DType::kBF16, {2, 3}, 1)}, {"f32", patterned(DType::kF32, {4}, 2)},
      {"i8", patterned(DType::kI8, {5}, 3)},        {"i32", patterned(DType::kI32, {2, 2}, 4)},
      {"i64", patterned(DType::kI64, {3}, 5)},      {"scalar", patterned(DType::kF32, {}, 6)},
      {"empty", patterned(DType::kBF16, {0, 4}, 7)}};
  const auto path = dir.path() / "t.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}});
  EXPECT_EQ(files_in(dir.path()), std::set<std::string>{"t.safetensors"});  // no .tmp left behind

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f.data_offset() % 8, 0u);
  std::vector<std::string> given;
  for (const auto& [name, t] : tensors) {
    given.push_back(name);
    EXPECT_TRUE(same_bytes(f.tensor(name), t)) << name;
  }
  EXPECT_EQ(names_in_file_order(f), given);  // write_safetensors keeps the caller's order
}

TEST(WriteSafetensors, HeaderIsCompactWithoutMetadataUnlessGiven) {
  TempDir dir("writer");
  write_safetensors(dir.path() / "a.safetensors", {{"x", patterned(DType::kF32, {1}, 0)}});
  const SafetensorsFile f = SafetensorsFile::open(dir.path() / "a.safetensors");
  EXPECT_TRUE(f.metadata().empty());
  const std::string text = read_text_file(dir.path() / "a.safetensors").substr(8, f.data_offset() - 8);
  EXPECT_EQ(text, R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})" + std::string(2, ' '));
}

TEST(WriteSafetensors, RejectsDuplicateAndReservedNames) {
  TempDir dir("writer");
  const auto path = dir.path() / "d.safetensors";
  expect_error(
      [&] {
        write_safetensors(path, {{"x", patterned(DType::kF32, {1}, 0)}, {"x", patterned(DType::kF32, {1}, 1)}});
      },
      ErrorCode::kInvalidArgument, path.string(), "x", "given twice");
  expect_error(
      [&] {
        write_safetensors(path, {{"__metadata__", patterned(DType::kF32, {1}, 0)}});
      },
      ErrorCode::kInvalidArgument, path.string(), "__metadata__", "reserved");
  expect_error(
      [&] {
        write_safetensors(path, {{"blank", Tensor()}});
      },
      ErrorCode::kInvalidArgument, path.string(), "blank", "no data");
  EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(OutputFile, DiskFullIsAnIoErrorNamingTheFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  expect_error(
      [] {
        OutputFile out("/dev/full");
        const std::string block(1 << 16, 'x');
        out.write(block);
        out.close();
      },
      ErrorCode::kIo, "/dev/full", "", "No space left on device");
}

TEST(OutputFile, UncreatableFileIsAnIoError) {
  TempDir dir("writer");
  const auto path = dir.path() / "no_such_dir" / "f";
  expect_error([&] { OutputFile out(path); }, ErrorCode::kIo, path.string(), "", "cannot create");
}

// Sizes (max 100 bytes): b.w 40 | a.w 40 -> 80 | c.i 20 would make 100 >= max: new shard | d.big 200: own
// shard | e.s 8, f.x 20, g.y 8, a.z 4 -> 40.
struct ShardingCase {
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"b.w", patterned(DType::kBF16, {20}, 1)}, {"a.w", patterned(DType::kF32, {10}, 2)},
      {"c.i", patterned(DType::kI8, {20}, 3)},   {"d.big", patterned(DType::kF32, {5, 10}, 4)},
      {"e.s", patterned(DType::kI64, {1}, 5)},   {"f.x", patterned(DType::kBF16, {10}, 6)},
      {"g.y", patterned(DType::kI32, {2}, 7)},   {"a.z", patterned(DType::kBF16, {2}, 8)}};
  std::uint64_t total() const {
    std::uint64_t s = 0;
    for (const auto& [n, t] : tensors) s += t.nbytes();
    return s;
  }
};

TEST(ShardedSafetensorsWriter, ClosesShardBeforeTheTensorThatWouldReachTheMax) {
  TempDir dir("sharded");
  const ShardingCase c;
  ShardedSafetensorsWriter writer(dir.path(), "quant_model_weight_w8a8_dynamic", 100);
  for (const auto& [name, t] : c.tensors) writer.add(name, t);
  const ShardedWriteSummary summary = writer.finish();

  const std::string base = "quant_model_weight_w8a8_dynamic";
  const std::vector<std::string> shards = {base + "-00001-of-00004.safetensors", base + "-00002-of-00004.safetensors",
                                           base + "-00003-of-00004.safetensors", base + "-00004-of-00004.safetensors"};
  EXPECT_EQ(summary.shard_names, shards);
  EXPECT_EQ(summary.tensor_count, 8u);
  EXPECT_EQ(summary.total_size, c.total());
  EXPECT_EQ(summary.total_size, 40u + 40 + 20 + 200 + 8 + 20 + 8 + 4);
  EXPECT_EQ(summary.names, (std::vector<std::string>{"b.w", "a.w", "c.i", "d.big", "e.s", "f.x", "g.y", "a.z"}));
  EXPECT_EQ(summary.index_path, dir.path() / (base + ".safetensors.index.json"));
  std::set<std::string> expected_files(shards.begin(), shards.end());
  expected_files.insert(base + ".safetensors.index.json");
  EXPECT_EQ(files_in(dir.path()), expected_files);  // no temporaries left

  // In-file order: dtype size descending, then name.
  const std::vector<std::vector<std::string>> expected_order = {
      {"a.w", "b.w"}, {"c.i"}, {"d.big"}, {"e.s", "g.y", "a.z", "f.x"}};
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const SafetensorsFile f = SafetensorsFile::open(dir.path() / shards[i]);
    EXPECT_EQ(names_in_file_order(f), expected_order[i]) << shards[i];
    EXPECT_EQ(f.data_offset() % 8, 0u) << shards[i];
    EXPECT_TRUE(f.metadata().empty());
    for (const auto& [name, t] : c.tensors) {
      if (f.contains(name)) {
        EXPECT_TRUE(same_bytes(f.tensor(name), t)) << name;
      }
    }
  }

  // The index: 2-space indent, total_size, weight_map in write order.
  nlohmann::ordered_json expected_index;
  expected_index["metadata"]["total_size"] = c.total();
  const std::vector<int> shard_of = {0, 0, 1, 2, 3, 3, 3, 3};
  for (std::size_t i = 0; i < c.tensors.size(); ++i) {
    expected_index["weight_map"][c.tensors[i].first] = shards[shard_of[i]];
  }
  const std::string index_text = read_text_file(summary.index_path);
  EXPECT_EQ(index_text, expected_index.dump(2));
  EXPECT_EQ(
      index_text.rfind("{\n  \"metadata\": {\n    \"total_size\": 340\n  },\n  \"weight_map\": {\n    \"b.w\": ", 0),
      0u);
}

TEST(ShardedSafetensorsWriter, KeepsWriteOrderWhenNotSorting) {
  TempDir dir("sharded");
  const ShardingCase c;
  ShardedSafetensorsWriter writer(dir.path(), "model", 100, /*sort_within_shard=*/false);
  for (const auto& [name, t] : c.tensors) writer.add(name, t);
  const auto summary = writer.finish();
  ASSERT_EQ(summary.shard_names.size(), 4u);
  const SafetensorsFile last = SafetensorsFile::open(dir.path() / summary.shard_names[3]);
  EXPECT_EQ(names_in_file_order(last), (std::vector<std::string>{"e.s", "f.x", "g.y", "a.z"}));
}

TEST(ShardedSafetensorsWriter, OneShardIsStillNumbered) {
  TempDir dir("sharded");
  ShardedSafetensorsWriter writer(dir.path(), "model");
  writer.add("x", patterned(DType::kBF16, {3}, 0));
  const auto summary = writer.finish();
  EXPECT_EQ(summary.shard_names, std::vector<std::string>{"model-00001-of-00001.safetensors"});
  EXPECT_EQ(files_in(dir.path()),
            (std::set<std::string>{"model-00001-of-00001.safetensors", "model.safetensors.index.json"}));
}

TEST(ShardedSafetensorsWriter, NoTensorsGivesOneEmptyShard) {
  TempDir dir("sharded");
  ShardedSafetensorsWriter writer(dir.path(), "model");
  const auto summary = writer.finish();
  ASSERT_EQ(summary.shard_names.size(), 1u);
  EXPECT_TRUE(SafetensorsFile::open(dir.path() / summary.shard_names[0]).tensors().empty());
  const auto index = read_json_file(summary.index_path);
  EXPECT_TRUE(index["weight_map"].empty());
  EXPECT_EQ(read_text_file(summary.index_path),
            nlohmann::json::parse(R"({"metadata":{"total_size":0},"weight_map":{}})").dump(2));
}

TEST(ShardedSafetensorsWriter, SingleFileModeWritesExactlyOneNamedFile) {
  TempDir dir("sharded");
  ShardedWriterOptions options;
  options.max_shard_bytes = 10;  // ignored in single-file mode
  options.single_file_name = "model.safetensors";
  options.metadata = {{"format", "pt"}};
  ShardedSafetensorsWriter writer(dir.path(), "model", options);
  const ShardingCase c;
  for (const auto& [name, t] : c.tensors) writer.add(name, t);
  const auto summary = writer.finish();
  EXPECT_EQ(summary.shard_names, std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(summary.index_path.empty());
  EXPECT_EQ(files_in(dir.path()), std::set<std::string>{"model.safetensors"});
  const SafetensorsFile f = SafetensorsFile::open(dir.path() / "model.safetensors");
  EXPECT_EQ(f.tensors().size(), c.tensors.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_TRUE(same_bytes(f.tensor("d.big"), c.tensors[3].second));
}

TEST(ShardedSafetensorsWriter, DestroyedWithoutFinishLeavesNothingBehind) {
  TempDir dir("sharded");
  {
    ShardedSafetensorsWriter writer(dir.path(), "model", 100);
    const ShardingCase c;
    for (const auto& [name, t] : c.tensors) writer.add(name, t);  // three shards closed, one open
    EXPECT_FALSE(files_in(dir.path()).empty());
  }
  EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(ShardedSafetensorsWriter, RejectsDuplicateNamesAndAddAfterFinish) {
  TempDir dir("sharded");
  ShardedSafetensorsWriter writer(dir.path(), "model");
  writer.add("x", patterned(DType::kF32, {2}, 0));
  expect_error([&] { writer.add("x", patterned(DType::kF32, {2}, 1)); }, ErrorCode::kInvalidArgument,
               dir.path().string(), "x", "added twice");
  writer.finish();
  expect_error([&] { writer.add("y", patterned(DType::kF32, {2}, 1)); }, ErrorCode::kInvalidArgument,
               dir.path().string(), "y", "after finish");
}

}  // namespace
}  // namespace moeslim::io
