#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "io/json_file.h"
#include "io/safetensors_writer.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;
using testing::expect_error;
using testing::write_bytes;

Tensor filled(float value, std::int64_t n = 2) {
  Tensor t = Tensor::zeros(DType::kF32, {n});
  for (std::int64_t i = 0; i < n; ++i) t.mutable_data<float>()[i] = value + static_cast<float>(i);
  return t;
}

// A two-shard checkpoint: a.safetensors holds x, y; b.safetensors holds z. The index may be overridden.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir() / "a.safetensors", {{"x", filled(1)}, {"y", filled(2)}});
    write_safetensors(dir() / "b.safetensors", {{"z", filled(3)}});
  }
  void write_index(const std::string& text) { write_bytes(dir() / "model.safetensors.index.json", text); }
  void write_default_index() {
    write_index(
        R"({"metadata":{"total_size":24},"weight_map":{"z":"b.safetensors","x":"a.safetensors","y":"a.safetensors"}})");
  }
  const std::filesystem::path& dir() const { return tmp_.path(); }
  std::string index_path() const { return (dir() / "model.safetensors.index.json").string(); }

  TempDir tmp_{"checkpoint"};
};

TEST(CheckpointBundled, OpensTheTinyModelThroughItsIndex) {
  const Checkpoint ckpt = Checkpoint::open(moeslim::testing::bundled_model_dir());
  EXPECT_TRUE(ckpt.is_sharded());
  const std::string expert = "model.layers.0.mlp.experts.15.down_proj.weight";
  ASSERT_TRUE(ckpt.contains(expert));
  EXPECT_EQ(ckpt.info(expert).shape, (Shape{256, 128}));
  EXPECT_EQ(ckpt.info(expert).dtype, DType::kBF16);
  const Tensor t = ckpt.tensor(expert);
  EXPECT_EQ(t.shape(), (Shape{256, 128}));
  EXPECT_TRUE(t.is_view());
  ckpt.release(expert);
  EXPECT_EQ(ckpt.names_with_prefix("model.layers.3.").size(), 9u + 3 * 16);
  EXPECT_EQ(ckpt.names().front(), "model.embed_tokens.weight");  // index order, not sorted
  EXPECT_EQ(ckpt.shard_path_of(expert).parent_path(), moeslim::testing::bundled_model_dir());

  const auto stats = ckpt.shard_stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].file_name, "model-00001-of-00002.safetensors");
  EXPECT_EQ(stats[1].file_name, "model-00002-of-00002.safetensors");
  EXPECT_EQ(stats[0].tensor_count + stats[1].tensor_count, ckpt.names().size());
  const auto index = read_json_file(moeslim::testing::bundled_model_dir() / "model.safetensors.index.json");
  EXPECT_EQ(stats[0].bytes + stats[1].bytes, index["metadata"]["total_size"].get<std::uint64_t>());
}

TEST_F(CheckpointTest, OpensASingleFileCheckpoint) {
  write_safetensors(dir() / "model.safetensors", {{"w", filled(5)}, {"v", filled(6, 3)}});
  const Checkpoint ckpt = Checkpoint::open(dir());
  EXPECT_FALSE(ckpt.is_sharded());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"w", "v"}));
  EXPECT_EQ(ckpt.tensor("v").data<float>()[2], 8.0f);
  EXPECT_EQ(ckpt.shard_path_of("w"), dir() / "model.safetensors");
  EXPECT_EQ(ckpt.dir(), dir());
  const auto stats = ckpt.shard_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].tensor_count, 2u);
  EXPECT_EQ(stats[0].bytes, 20u);
}

TEST_F(CheckpointTest, OpensAShardedCheckpointWithAnyShardNames) {
  write_default_index();
  const Checkpoint ckpt = Checkpoint::open(dir());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"z", "x", "y"}));
  EXPECT_EQ(ckpt.tensor("z").data<float>()[1], 4.0f);
  EXPECT_EQ(ckpt.tensor("y").data<float>()[0], 2.0f);
  EXPECT_EQ(ckpt.shard_path_of("z"), dir() / "b.safetensors");
  EXPECT_EQ(ckpt.names_with_prefix("x"), std::vector<std::string>{"x"});
  expect_error([&] { ckpt.tensor("w"); }, ErrorCode::kNotFound, dir().string(), "w", "no such tensor");
}

TEST_F(CheckpointTest, MissingDirectory) {
  const auto missing = dir() / "nowhere";
  expect_error([&] { Checkpoint::open(missing); }, ErrorCode::kNotFound, missing.string(), "",
               "model directory does not exist");
}

TEST_F(CheckpointTest, NeitherWeightFileNorIndex) {
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kNotFound, dir().string(), "",
               "no model.safetensors or model.safetensors.index.json");
}

TEST_F(CheckpointTest, IndexThatIsNotJson) {
  write_index("{\"weight_map\": {\n  \"x\": }");
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kFormat, index_path(), "",
               "invalid JSON: line 2, column 8");
}

TEST_F(CheckpointTest, IndexWithoutWeightMap) {
  write_index(R"({"metadata":{"total_size":24}})");
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kFormat, index_path(), "weight_map",
               "index has no 'weight_map'");
}

TEST_F(CheckpointTest, IndexWeightMapValueNotAString) {
  write_index(R"({"weight_map":{"x":1}})");
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kFormat, index_path(), "x",
               "weight_map value is not a shard file name");
}

TEST_F(CheckpointTest, IndexNamingAShardOutsideTheDirectory) {
  write_index(R"({"weight_map":{"x":"../a.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kFormat, index_path(), "x",
               "not a file in the model directory");
}

TEST_F(CheckpointTest, ShardListedInIndexIsMissing) {
  write_index(R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"c.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir()); }, ErrorCode::kNotFound, (dir() / "c.safetensors").string(), "z",
               "shard listed in model.safetensors.index.json is missing");
}

TEST_F(CheckpointTest, IndexedTensorMissingFromItsShardHeader) {
  write_index(R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors","q":"a.safetensors","z":"b.safetensors"}})");
  const Checkpoint ckpt = Checkpoint::open(dir());
  expect_error([&] { ckpt.tensor("x"); }, ErrorCode::kFormat, (dir() / "a.safetensors").string(), "q",
               "maps this tensor to a.safetensors, whose header lacks it");
}

TEST_F(CheckpointTest, ShardTensorAbsentFromIndex) {
  write_index(R"({"weight_map":{"x":"a.safetensors","z":"b.safetensors"}})");
  const Checkpoint ckpt = Checkpoint::open(dir());
  EXPECT_EQ(ckpt.tensor("z").data<float>()[0], 3.0f);  // b is consistent
  expect_error([&] { ckpt.info("x"); }, ErrorCode::kFormat, (dir() / "a.safetensors").string(), "y",
               "in the shard's header but not in model.safetensors.index.json");
}

TEST_F(CheckpointTest, SameTensorInTwoShards) {
  write_safetensors(dir() / "b.safetensors", {{"z", filled(3)}, {"y", filled(2)}});
  write_default_index();  // y -> a.safetensors, yet b.safetensors holds a y too
  const Checkpoint ckpt = Checkpoint::open(dir());
  expect_error([&] { ckpt.tensor("z"); }, ErrorCode::kFormat, (dir() / "b.safetensors").string(), "y",
               "tensor is stored in two shards: b.safetensors and a.safetensors");
}

TEST_F(CheckpointTest, TensorStoredInAnotherShardThanIndexed) {
  write_index(R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors","z":"b.safetensors"}})");
  const Checkpoint ckpt = Checkpoint::open(dir());
  expect_error([&] { ckpt.tensor("x"); }, ErrorCode::kFormat, (dir() / "a.safetensors").string(), "y",
               "stored in a.safetensors but model.safetensors.index.json maps it to b.safetensors");
}

TEST_F(CheckpointTest, ShardsAreOpenedOnlyWhenNeeded) {
  write_bytes(dir() / "b.safetensors", "garbage!!");  // corrupt, but nobody asks for z yet
  write_default_index();
  const Checkpoint ckpt = Checkpoint::open(dir());
  EXPECT_TRUE(ckpt.contains("z"));
  EXPECT_EQ(ckpt.names_with_prefix("").size(), 3u);
  EXPECT_EQ(ckpt.tensor("x").data<float>()[0], 1.0f);
  expect_error([&] { ckpt.tensor("z"); }, ErrorCode::kFormat, (dir() / "b.safetensors").string(), "",
               "exceeds the limit");
}

}  // namespace
}  // namespace moeslim::io
