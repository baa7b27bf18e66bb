// The resource estimate quant checks before any work: output size per scheme and the free-space refusal.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/test_paths.h"
#include "core/error.h"
#include "model/config.h"
#include "pipeline/resource_estimate.h"
#include "recipe/recipe.h"

namespace moeslim::pipeline {
namespace {

namespace fs = std::filesystem;

recipe::Recipe bundled(const std::string& file) {
  return recipe::load_recipe(testing::source_dir() / "configs" / "qwen3_moe" / file);
}

model::ModelConfig tiny_config() { return model::ModelConfig::load(testing::bundled_model_dir()); }

TEST(ResourceEstimate, Int4ExpertsHalveWhatInt8ExpertsWrite) {
  const model::ModelConfig config = tiny_config();
  WorkloadShape work;
  work.calibration_tokens = 1000;
  const ResourceEstimate w8 = estimate_resources(bundled("qwen3-moe-w8a8.yaml"), config, work);
  const ResourceEstimate w4 = estimate_resources(bundled("qwen3-30b-w4a8.yaml"), config, work);
  // Expert weights: layers × experts × 3 projections × moe_intermediate × hidden codes, one byte each in int8.
  const std::uint64_t expert_codes = static_cast<std::uint64_t>(config.num_hidden_layers * config.num_experts * 3 *
                                                                config.moe_intermediate_size * config.hidden_size);
  EXPECT_EQ(w8.output_bytes - w4.output_bytes, expert_codes / 2);
  // Float everything else: at least the embedding and lm_head in bf16.
  EXPECT_GT(w8.output_bytes, static_cast<std::uint64_t>(2 * 2 * config.vocab_size * config.hidden_size));
}

TEST(ResourceEstimate, PeakMemoryGrowsWithTheCalibrationSetAndTheChunk) {
  const model::ModelConfig config = tiny_config();
  const recipe::Recipe recipe = bundled("qwen3-moe-w8a8.yaml");
  WorkloadShape small;
  small.calibration_tokens = 1000;
  small.rows_per_chunk = 100;
  WorkloadShape more_tokens = small;
  more_tokens.calibration_tokens = 2000;
  WorkloadShape bigger_batch = small;
  bigger_batch.rows_per_chunk = 400;
  const std::uint64_t base = estimate_resources(recipe, config, small).peak_memory_bytes;
  EXPECT_GT(estimate_resources(recipe, config, more_tokens).peak_memory_bytes, base);
  EXPECT_GT(estimate_resources(recipe, config, bigger_batch).peak_memory_bytes, base);
}

TEST(ResourceEstimate, RefusesAnOutputLargerThanTheFreeSpace) {
  testing::TempDir dir("resource_estimate");
  ResourceEstimate huge;
  huge.output_bytes = std::uint64_t{1} << 60;  // an exabyte: no test machine has it free
  try {
    check_free_disk_space(huge, dir.path());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_EQ(e.file(), dir.path().string());
    EXPECT_NE(std::string(e.what()).find("not enough free disk space"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB available"), std::string::npos) << e.what();
  }
  ResourceEstimate small;
  small.output_bytes = 1 << 20;
  EXPECT_NO_THROW(check_free_disk_space(small, dir.path()));
}

}  // namespace
}  // namespace moeslim::pipeline
