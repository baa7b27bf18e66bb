// The resource estimate quant checks before any work: the output size and the free-space refusal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "common/recipe_text.h"
#include "common/test_paths.h"
#include "core/error.h"
#include "model/config.h"
#include "model/synthetic_checkpoint.h"
#include "pipeline/resource_estimate.h"
#include "recipe/recipe.h"

namespace moeslim::pipeline {
namespace {

namespace fs = std::filesystem;

recipe::Recipe bundled(const std::string& file) {
  return recipe::load_recipe(testing::source_dir() / "configs" / "qwen3_moe" / file);
}

model::ModelConfig tiny_config() { return model::ModelConfig::load(testing::bundled_model_dir()); }

// The output's tensor bytes come from the format (formats/ tests that estimate); the side files are a fixed
// allowance on top.
TEST(ResourceEstimate, OutputIsTheFormatsTensorBytesPlusTheSideFileAllowance) {
  WorkloadShape work;
  work.output_tensor_bytes = 12345;
  const ResourceEstimate e = estimate_resources(bundled("qwen3-moe-w8a8.yaml"), tiny_config(), work);
  EXPECT_EQ(e.output_bytes, 12345u + (std::uint64_t{16} << 20));
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

model::ModelConfig preset(const std::string& name) {
  return model::ModelConfig::from_json(model::synthetic_config_json(name, 1), name);
}

// GPTQ holds, per thread quantizing an expert, its Hessian, the factor, act_order's two copies and the working
// weights (4·hidden² + 2·hidden·width floats), and once the attention's largest Hessian and its copies.
TEST(ResourceEstimate, GptqAddsItsHessiansPerThread) {
  const model::ModelConfig config = preset("qwen3-30b-a3b");
  WorkloadShape work;
  work.calibration_tokens = 18347;
  work.rows_per_chunk = 512;
  work.v1 = true;
  const auto peak = [&](const char* recipe, int threads) {
    work.threads = threads;
    return estimate_resources(bundled(recipe), config, work).peak_memory_bytes;
  };
  const std::uint64_t h = 2048, width = 768, q = 32 * 128;
  EXPECT_EQ(peak("qwen3-30b-w4a8-gptq.yaml", 1) - peak("qwen3-30b-w4a8.yaml", 1),
            (4 * h * h + 2 * h * width + 4 * q * q) * 4);
  EXPECT_EQ(peak("qwen3-30b-w4a8-gptq.yaml", 4) - peak("qwen3-30b-w4a8.yaml", 4),
            (4 * (4 * h * h + 2 * h * width) + 4 * q * q) * 4);

  // v0 (the W8A8 script with GPTQ weights): the attention's input rows of the larger prompt set come on top,
  // k_proj's, its shifted copy and o_proj's.
  std::ifstream in(testing::source_dir() / "configs" / "qwen3_moe" / "qwen3-moe-w8a8.yaml");
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const std::string scheme : {"scheme: w8a8_dynamic\n", "scheme: w8a8\n"}) {
    const std::size_t at = yaml.find(scheme);
    ASSERT_NE(at, std::string::npos) << scheme;
    yaml.insert(at + scheme.size(), "        weight: gptq\n");
  }
  testing::TempDir dir("resource_estimate_v0_gptq");
  work.v1 = false;
  work.anti_tokens = 3000;
  work.threads = 1;
  EXPECT_EQ(estimate_resources(testing::load_recipe_text(dir.path(), yaml), config, work).peak_memory_bytes -
                estimate_resources(bundled("qwen3-moe-w8a8.yaml"), config, work).peak_memory_bytes,
            (4 * h * h + 2 * h * width + 4 * q * q) * 4 + (2 * h + q) * 4 * 18347);
}

// The layer's experts in the fewest even groups of at most 1.5 GiB of bf16, at least two experts per thread.
TEST(ResourceEstimate, DefaultExpertGroupsHoldAtMostOneAndAHalfGibOfFloatWeights) {
  // Qwen3-30B-A3B: 128 experts of 9.4 MB, 1.2 GB in all: one group.
  EXPECT_EQ(default_experts_per_group(preset("qwen3-30b-a3b"), 2, 2), 128);
  // Qwen3-235B-A22B: 128 experts of 37.7 MB, 4.83 GB: three groups of 43.
  EXPECT_EQ(default_experts_per_group(preset("qwen3-235b-a22b"), 2, 2), 43);
  // Qwen3-Coder-480B-A35B: 160 experts of 94 MB, 15.1 GB: ten groups of 16.
  EXPECT_EQ(default_experts_per_group(preset("qwen3-coder-480b-a35b"), 2, 2), 16);
  EXPECT_EQ(default_experts_per_group(preset("qwen3-coder-480b-a35b"), 2, 16), 32);   // two per thread
  EXPECT_EQ(default_experts_per_group(preset("qwen3-coder-480b-a35b"), 2, 128), 160);  // never more than all
  EXPECT_EQ(default_experts_per_group(tiny_config(), 2, 1), tiny_config().num_experts);
}

// A layer's expert weights enter the peak once per group, not once per layer.
TEST(ResourceEstimate, PeakMemoryFollowsTheExpertGroupNotTheLayer) {
  const model::ModelConfig config = preset("qwen3-coder-480b-a35b");
  const recipe::Recipe recipe = bundled("qwen3-moe-w8a8.yaml");
  WorkloadShape work;
  work.calibration_tokens = 2000;
  work.rows_per_chunk = 500;
  work.threads = 2;
  work.experts_per_group = 40;
  const std::uint64_t grouped = estimate_resources(recipe, config, work).peak_memory_bytes;
  work.experts_per_group = 0;  // all 160
  const std::uint64_t whole = estimate_resources(recipe, config, work).peak_memory_bytes;
  const std::uint64_t expert_bytes = 3ull * 6144 * 2560 * 2;
  EXPECT_EQ(whole - grouped, (160 - 40) * expert_bytes);  // the 120 experts outside the group
  work.experts_per_group = 16;  // the default on 2 threads: under the setup's peak (the 1.9 GB embedding)
  EXPECT_LT(estimate_resources(recipe, config, work).peak_memory_bytes, std::uint64_t{4} << 30);
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
