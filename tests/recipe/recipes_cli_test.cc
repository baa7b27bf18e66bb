// `moeslim recipes` as a user runs it: the listing and --show.
#include <gtest/gtest.h>

#include "cli/run_command.h"
#include "common/test_paths.h"

namespace moeslim::testing {
namespace {

TEST(RecipesCli, ListsEveryBundledRecipe) {
  const CommandResult r = run_moeslim("recipes");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* text : {"qwen3-30b-w4a8 ", "qwen3_moe/qwen3-30b-w4a8.yaml", "qwen3-235b-w4a8 ", "qwen3-moe-w8a8 ",
                           "qwen3-moe-w8a8-plus", "qwen3-30b-w4a8-plus", "modelslim_v0", "modelslim_v1",
                           "Qwen3-30B w4a8", "Qwen3-235B w4a8", "Qwen3-30B,Qwen3-235B w8a8",
                           "flex_smooth,quantize ", "m4,quantize,static_calibration ", "qwen3-moe-w4a8-rot-gptq ",
                           "rotate,flex_smooth,quantize ", "PICK IT WHEN", "must match msModelSlim's one-click",
                           "WRITES: RUNS ON", "ascendV1: MindIE, vLLM-Ascend ", "ascendV1-v1: MindIE, vLLM-Ascend ",
                           "compressed-tensors: vLLM GPU ", "compressed-tensors: vLLM GPU, vLLM CPU, vLLM-Ascend ",
                           "compressed-tensors: vLLM CPU, vLLM-Ascend "}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  }
  // The target runtimes of each compressed-tensors recipe.
  const auto line_of = [&](const std::string& name) { return r.out.substr(r.out.find(name + " "), 200); };
  EXPECT_NE(line_of("qwen3-moe-w4a16-gptq").find("compressed-tensors: vLLM GPU "), std::string::npos) << r.out;
  EXPECT_NE(line_of("qwen3-moe-w8a8-dynamic").find("vLLM GPU, vLLM CPU, vLLM-Ascend"), std::string::npos) << r.out;
  EXPECT_NE(line_of("qwen3-moe-w4a8-rot-gptq-ct").find("compressed-tensors: vLLM CPU, vLLM-Ascend"),
            std::string::npos)
      << r.out;
  // Header plus one line per recipe.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 14) << r.out;
}

TEST(RecipesCli, ShowPrintsTheFile) {
  const CommandResult r = run_moeslim("recipes --show qwen3-30b-w4a8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, read_whole_file(source_dir() / "configs" / "qwen3_moe" / "qwen3-30b-w4a8.yaml"));
}

TEST(RecipesCli, ShowUnknownNameListsTheNames) {
  const CommandResult r = run_moeslim("recipes --show qwen3-7b");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("qwen3-7b"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("qwen3-235b-w4a8"), std::string::npos) << r.err;
}

TEST(RecipesCli, StepsListsTheRegistry) {
  const CommandResult r = run_moeslim("recipes --steps");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* text : {"rotate", "smooth     m4", "smooth     flex_smooth", "quantize", "minmax", "ssz",
                           "ssz_steps", "gptq", "gptq_min_tokens"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  }
}

TEST(RecipesCli, HelpHasAnExample) {
  const CommandResult r = run_moeslim("recipes --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Example"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moeslim::testing
