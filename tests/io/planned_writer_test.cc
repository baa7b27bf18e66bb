// ShardedSafetensorsWriter told its tensors ahead (plan()): shards written in place are byte-identical to the
// ones written without a plan, and an add that leaves the plan, anywhere, still gives the same files.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>

#include "common/test_paths.h"
#include "io/safetensors_writer.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;
using testing::expect_error;
using testing::patterned;

using Added = std::vector<std::pair<std::string, Tensor>>;

// Sizes (max 100 bytes): b.w 40, a.w 40 | c.i 20 | d.big 200 | e.s 8, f.x 20, g.y 8, a.z 4: shards [0, 2),
// [2, 3), [3, 4), [4, 8).
Added eight_tensors() {
  return {{"b.w", patterned(DType::kBF16, {20}, 1)}, {"a.w", patterned(DType::kF32, {10}, 2)},
          {"c.i", patterned(DType::kI8, {20}, 3)},   {"d.big", patterned(DType::kF32, {5, 10}, 4)},
          {"e.s", patterned(DType::kI64, {1}, 5)},   {"f.x", patterned(DType::kBF16, {10}, 6)},
          {"g.y", patterned(DType::kI32, {2}, 7)},   {"a.z", patterned(DType::kBF16, {2}, 8)}};
}
const std::vector<std::size_t> kShardEnds = {2, 3, 4, 8};

std::vector<PlannedTensor> plan_of(const Added& tensors) {
  std::vector<PlannedTensor> plan;
  for (const auto& [name, t] : tensors) plan.push_back({name, t.dtype(), t.shape()});
  return plan;
}

// Every file in `dir` by name, with its bytes.
std::map<std::string, std::string> files_with_bytes(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    files[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

ShardedWriteSummary write(const std::filesystem::path& dir, const Added& tensors, const ShardedWriterOptions& options,
                          const std::vector<PlannedTensor>* plan) {
  ShardedSafetensorsWriter writer(dir, "model", options);
  if (plan != nullptr) writer.plan(*plan);
  for (const auto& [name, t] : tensors) writer.add(name, t);
  return writer.finish();
}

void expect_same_files(const Added& tensors, const ShardedWriterOptions& options,
                       const std::vector<PlannedTensor>& plan, std::size_t written_once) {
  TempDir unplanned("unplanned"), planned("planned");
  const ShardedWriteSummary a = write(unplanned.path(), tensors, options, nullptr);
  const ShardedWriteSummary b = write(planned.path(), tensors, options, &plan);
  EXPECT_EQ(a.tensors_written_once, 0u);
  EXPECT_EQ(b.tensors_written_once, written_once);
  EXPECT_EQ(a.shard_names, b.shard_names);
  EXPECT_EQ(files_with_bytes(unplanned.path()), files_with_bytes(planned.path()));
}

TEST(PlannedShardedWriter, WritesEveryShardInPlaceWithTheSameBytes) {
  ShardedWriterOptions sharded;
  sharded.max_shard_bytes = 100;
  sharded.metadata = {{"format", "pt"}};
  const Added tensors = eight_tensors();
  expect_same_files(tensors, sharded, plan_of(tensors), 8);

  ShardedWriterOptions unsorted = sharded;
  unsorted.sort_within_shard = false;
  expect_same_files(tensors, unsorted, plan_of(tensors), 8);

  ShardedWriterOptions single;
  single.single_file_name = "model.safetensors";
  single.max_shard_bytes = 10;  // ignored in single-file mode
  expect_same_files(tensors, single, plan_of(tensors), 8);
}

TEST(PlannedShardedWriter, LeavingThePlanAnywhereGivesTheSameFiles) {
  ShardedWriterOptions options;
  options.max_shard_bytes = 100;
  const Added tensors = eight_tensors();
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    // The shards that closed while the adds still followed the plan: those ending before tensor k.
    std::size_t in_place = 0;
    for (std::size_t end : kShardEnds) {
      if (end < k) in_place = end;
    }
    std::vector<PlannedTensor> other_shape = plan_of(tensors);
    other_shape[k].shape = {other_shape[k].shape[0] + 1};
    std::vector<PlannedTensor> other_name = plan_of(tensors);
    other_name[k].name += ".planned";
    std::vector<PlannedTensor> other_dtype = plan_of(tensors);
    other_dtype[k].dtype = other_dtype[k].dtype == DType::kF32 ? DType::kI32 : DType::kF32;
    std::vector<PlannedTensor> cut_short = plan_of(tensors);
    cut_short.resize(k);
    for (const auto* plan : {&other_shape, &other_name, &other_dtype, &cut_short}) {
      SCOPED_TRACE("plan leaves the adds at tensor " + std::to_string(k));
      expect_same_files(tensors, options, *plan, in_place);
    }
  }
}

TEST(PlannedShardedWriter, FinishBeforeThePlansEndCopiesTheOpenShard) {
  ShardedWriterOptions options;
  options.max_shard_bytes = 100;
  const Added tensors = eight_tensors();
  std::vector<PlannedTensor> longer = plan_of(tensors);
  longer.push_back({"h.more", DType::kI8, {4}});
  expect_same_files(tensors, options, longer, 4);  // shards [0, 4) in place; the last one copied
  expect_same_files({}, options, {}, 0);           // no tensors, empty plan: one empty shard
}

TEST(PlannedShardedWriter, PlanComesBeforeTheFirstAddAndNothingIsLeftBehind) {
  TempDir dir("planned");
  const Added tensors = eight_tensors();
  {
    ShardedSafetensorsWriter writer(dir.path(), "model", 100);
    writer.plan(plan_of(tensors));
    for (std::size_t i = 0; i < 6; ++i) writer.add(tensors[i].first, tensors[i].second);  // shards 1-3 closed
    expect_error([&] { writer.plan(plan_of(tensors)); }, ErrorCode::kInvalidArgument, dir.path().string(), "",
                 "after the first add");
    EXPECT_FALSE(std::filesystem::is_empty(dir.path()));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));  // destroyed without finish()
}

}  // namespace
}  // namespace moeslim::io
