// Every way a recipe file can be wrong: each is a kInvalidArgument Error that names the file and the key path
// and says what is allowed instead.
#include <fstream>

#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "core/error.h"
#include "recipe/recipe.h"

namespace moeslim::recipe {
namespace {

using moeslim::testing::TempDir;

// Loads `yaml` from a fresh file and checks the error: code, file, key path (also in what()), and that the
// message contains `says`.
void expect_invalid(const std::string& yaml, const std::string& field, const std::string& says) {
  TempDir dir("recipe_invalid");
  const auto file = dir.path() / "recipe.yaml";
  std::ofstream(file) << yaml;
  try {
    load_recipe(file);
    ADD_FAILURE() << "accepted:\n" << yaml;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_EQ(e.file(), file.string()) << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(file.string(), 0), 0u) << what;
    if (!field.empty()) {
      EXPECT_NE(what.find("'" + field + "'"), std::string::npos) << what;
    }
    EXPECT_NE(e.detail().find(says), std::string::npos) << "expected \"" << says << "\" in: " << what;
  }
}

void expect_valid(const std::string& yaml) {
  TempDir dir("recipe_valid");
  std::ofstream(dir.path() / "recipe.yaml") << yaml;
  EXPECT_NO_THROW(load_recipe(dir.path() / "recipe.yaml")) << yaml;
}

// Minimal valid recipes to break one key at a time.
const std::string kV0 = "apiversion: modelslim_v0\n";
const std::string kV1 = "apiversion: modelslim_v1\n";
const std::string kM4 = "  - smooth: {method: m4, subgraphs: [norm-linear, ov]}\n";
const std::string kFlex = "  - smooth: {method: flex_smooth, subgraphs: [norm-linear]}\n";
const std::string kQuantV0 =
    "  - quantize:\n      - {include: ['*'], exclude: ['*.mlp.gate'], scheme: w8a8_dynamic}\n";
const std::string kQuantV1 = "  - quantize:\n      - {include: ['*mlp.experts*'], scheme: w4a8_dynamic}\n";
// A v1 recipe whose single group is `group` (flow mapping body).
std::string v1_group(const std::string& group) {
  return kV1 + "process:\n" + kFlex + "  - quantize:\n      - {" + group + "}\n";
}
std::string v0_group(const std::string& group) {
  return kV0 + "process:\n" + kM4 + "  - quantize:\n      - {" + group + "}\n";
}

TEST(RecipeValidation, TheTemplatesAreValid) {
  expect_valid(kV0 + "process:\n" + kM4 + kQuantV0);
  expect_valid(kV1 + "process:\n" + kFlex + kQuantV1);
  expect_valid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: ssz, ssz_steps: 10"));
  expect_valid(v0_group("include: ['*self_attn*'], scheme: w8a8, weight: gptq, gptq_fallback: minmax"));
}

TEST(RecipeValidation, UnknownTopLevelKey) {
  expect_invalid(kV0 + "proces:\n" + kQuantV0, "proces",
                 "allowed keys: apiversion, name, description, use_when, match, data, process, save");
}

TEST(RecipeValidation, UnknownNestedKeys) {
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [norm-linear, ov], alpah: 0.5}\n" + kQuantV0,
                 "process[0].smooth.alpah", "allowed keys: method, subgraphs, alpha, beta");
  expect_invalid(v1_group("include: ['*'], schema: w8a8_dynamic"), "process[1].quantize[0].schema",
                 "allowed keys: include, exclude, scheme, group_size, symmetric, weight, ssz_steps");
  expect_invalid(kV0 + "data: {calib: x.json}\nprocess:\n" + kQuantV0, "data.calib",
                 "allowed keys: calib_dataset, anti_dataset, batch_size");
  expect_invalid(kV0 + "match: {model_type: [Qwen3-30B], quant_type: w8a8}\nprocess:\n" + kQuantV0,
                 "match.model_type", "allowed keys: model_types, quant_type");
  expect_invalid(kV0 + "process:\n" + kQuantV0 + "save: {path: x}\n", "save.path", "allowed keys: format");
  expect_invalid(kV0 + "process:\n  - rotate: {method: hadamard, seed: 1}\n" + kQuantV0, "process[0].rotate.seed",
                 "allowed keys: method");
  expect_invalid(kV0 + "process:\n  - calibrate: {}\n" + kQuantV0, "process[0].calibrate",
                 "allowed keys: rotate, smooth, quantize");
}

TEST(RecipeValidation, WrongTypes) {
  expect_invalid("apiversion: [modelslim_v0]\nprocess:\n" + kQuantV0, "apiversion", "expected a string, got a list");
  expect_invalid(kV0 + "name: {a: b}\nprocess:\n" + kQuantV0, "name", "expected a string, got a mapping");
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [norm-linear, ov], alpha: high}\n" + kQuantV0,
                 "process[0].smooth.alpha", "expected a number in [0, 1], got 'high'");
  expect_invalid(v1_group("include: '*', scheme: w8a8_dynamic"), "process[1].quantize[0].include",
                 "expected a list of strings");
  expect_invalid(v1_group("include: [['*']], scheme: w8a8_dynamic"), "process[1].quantize[0].include[0]",
                 "expected a string, got a list");
  expect_invalid(kV0 + "data: {batch_size: 2.5}\nprocess:\n" + kQuantV0, "data.batch_size",
                 "expected an integer in 1..16");
  expect_invalid(kV0 + "data: [a]\nprocess:\n" + kQuantV0, "data", "expected a mapping");
  expect_invalid(kV0 + "process: {quantize: []}\n", "process", "expected a list of steps");
  expect_invalid(kV0 + "process:\n  - quantize: {include: ['*']}\n", "process[0].quantize",
                 "expected a list of groups");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a8_dynamic, weight: ssz, ssz_steps: many"),
                 "process[1].quantize[0].ssz_steps", "expected an integer");
}

TEST(RecipeValidation, MessagesGiveTheLine) {
  expect_invalid(kV0 + "data:\n  batch_size: lots\nprocess:\n" + kQuantV0, "data.batch_size", "(line 3)");
}

TEST(RecipeValidation, YamlSyntaxErrorHasLineAndColumn) {
  expect_invalid(kV0 + "process:\n  - quantize: [\n      {include: ['*'], scheme: w8a8}\n", "",
                 "YAML syntax error at line");
  expect_invalid("apiversion: modelslim_v0\n  bad: indent\n", "", "YAML syntax error at line 2, column");
}

TEST(RecipeValidation, EmptyFile) { expect_invalid("", "", "the file is empty"); }

TEST(RecipeValidation, TopLevelMustBeAMapping) { expect_invalid("- a\n- b\n", "", "expected a mapping"); }

TEST(RecipeValidation, MissingApiversion) {
  expect_invalid("process:\n" + kQuantV0, "apiversion", "missing required key 'apiversion'");
}

TEST(RecipeValidation, UnknownApiversion) {
  expect_invalid("apiversion: modelslim_v2\nprocess:\n" + kQuantV0, "apiversion",
                 "expected one of modelslim_v0, modelslim_v1");
}

TEST(RecipeValidation, MissingProcess) {
  expect_invalid(kV0 + "name: x\n", "process", "missing required key 'process'");
}

TEST(RecipeValidation, MissingQuantizeStep) {
  expect_invalid(kV0 + "process:\n" + kM4, "process", "no quantize step");
  expect_invalid(kV0 + "process: []\n", "process", "no quantize step");
}

TEST(RecipeValidation, StepWithTwoKinds) {
  expect_invalid(kV0 + "process:\n  - {smooth: {method: m4, subgraphs: [norm-linear, ov]}, quantize: []}\n",
                 "process[0]", "exactly one key");
}

TEST(RecipeValidation, DuplicateStepKind) {
  expect_invalid(kV0 + "process:\n" + kM4 + kM4 + kQuantV0, "process[1].smooth",
                 "appears twice (first at process[0])");
  expect_invalid(kV0 + "process:\n" + kQuantV0 + kQuantV0, "process[1].quantize", "appears twice");
}

TEST(RecipeValidation, RotateAfterSmooth) {
  expect_invalid(kV0 + "process:\n" + kM4 + "  - rotate: {method: hadamard}\n" + kQuantV0, "process[1].rotate",
                 "'rotate' must come before 'smooth'");
}

TEST(RecipeValidation, SmoothAfterQuantize) {
  expect_invalid(kV0 + "process:\n" + kQuantV0 + kM4, "process[1].smooth", "'smooth' must come before 'quantize'");
}

TEST(RecipeValidation, UnknownRotateMethod) {
  expect_invalid(kV0 + "process:\n  - rotate: {method: quarot}\n" + kQuantV0, "process[0].rotate.method",
                 "expected one of hadamard");
}

TEST(RecipeValidation, M4InV1) {
  expect_invalid(kV1 + "process:\n" + kM4 + kQuantV1, "process[0].smooth.method", "m4 is the v0 anti-outlier");
}

TEST(RecipeValidation, FlexSmoothInV0) {
  expect_invalid(kV0 + "process:\n" + kFlex + kQuantV0, "process[0].smooth.method",
                 "flex_smooth is a v1 processor");
}

TEST(RecipeValidation, UnknownSmoothMethod) {
  expect_invalid(kV0 + "process:\n  - smooth: {method: smoothquant, subgraphs: [ov]}\n" + kQuantV0,
                 "process[0].smooth.method", "expected one of m4, flex_smooth");
}

TEST(RecipeValidation, M4WithoutNormLinearAndOv) {
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [norm-linear, up-down]}\n" + kQuantV0,
                 "process[0].smooth.subgraphs", "must contain both");
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [ov]}\n" + kQuantV0,
                 "process[0].smooth.subgraphs", "must contain both");
}

TEST(RecipeValidation, BadSubgraphs) {
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: [ov, qk, norm-linear]}\n" + kQuantV1,
                 "process[0].smooth.subgraphs[1]", "expected one of norm-linear, ov, moe-input, up-down");
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: [ov, up-down, ov]}\n" + kQuantV1,
                 "process[0].smooth.subgraphs[2]", "listed twice");
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: []}\n" + kQuantV1,
                 "process[0].smooth.subgraphs", "non-empty list");
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth}\n" + kQuantV1, "process[0].smooth.subgraphs",
                 "missing required key 'subgraphs'");
}

TEST(RecipeValidation, BetaWithM4) {
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [norm-linear, ov], beta: 0.5}\n" + kQuantV0,
                 "process[0].smooth.beta", "beta is a flex_smooth parameter");
}

TEST(RecipeValidation, AlphaAndBetaOutsideUnitInterval) {
  expect_invalid(kV0 + "process:\n  - smooth: {method: m4, subgraphs: [norm-linear, ov], alpha: 1.5}\n" + kQuantV0,
                 "process[0].smooth.alpha", "out of range: expected a number in [0, 1]");
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: [ov], beta: -0.1}\n" + kQuantV1,
                 "process[0].smooth.beta", "out of range");
  expect_invalid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: [ov], alpha: .nan}\n" + kQuantV1,
                 "process[0].smooth.alpha", "out of range");
  expect_valid(kV1 + "process:\n  - smooth: {method: flex_smooth, subgraphs: [ov], alpha: 0, beta: 1}\n" + kQuantV1);
}

TEST(RecipeValidation, StaticW8A8InV1) {
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8"), "process[1].quantize[0].scheme",
                 "w8a8 (static activations) needs the v0 static calibration");
}

TEST(RecipeValidation, W4A8InV0) {
  expect_invalid(v0_group("include: ['*mlp.experts*'], scheme: w4a8_dynamic"), "process[1].quantize[0].scheme",
                 "w4a8_dynamic is written only by the v1 pipeline");
}

TEST(RecipeValidation, W4A16AndItsGrid) {
  expect_valid(v1_group("include: ['*mlp.experts*'], scheme: w4a16"));
  expect_valid(v1_group("include: ['*'], exclude: ['*.mlp.gate'], scheme: w4a16, group_size: 0, symmetric: false, "
                        "weight: gptq"));
  expect_invalid(v0_group("include: ['*self_attn*'], scheme: w4a16"), "process[1].quantize[0].scheme",
                 "w4a16 is written only by the v1 pipeline");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, group_size: 128"),
                 "process[1].quantize[0].group_size", "group_size applies only to scheme w4a16");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a8_dynamic, symmetric: false"),
                 "process[1].quantize[0].symmetric", "symmetric applies only to scheme w4a16");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a16, group_size: 100"),
                 "process[1].quantize[0].group_size", "a multiple of 8");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a16, group_size: -8"),
                 "process[1].quantize[0].group_size", "out of range");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a16, symmetric: maybe"),
                 "process[1].quantize[0].symmetric", "true, false");
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a16, weight: ssz"), "process[1].quantize[0].scheme",
                 "weight method ssz cannot produce W4A16");
}

TEST(RecipeValidation, UnknownScheme) {
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: w4a4"), "process[1].quantize[0].scheme",
                 "expected one of w8a8, w8a8_dynamic, w4a8_dynamic, w4a16");
  expect_invalid(v1_group("include: ['*mlp.experts*']"), "process[1].quantize[0].scheme",
                 "missing required key 'scheme'");
}

TEST(RecipeValidation, SchemeFloat) {
  expect_invalid(v1_group("include: ['*mlp.experts*'], scheme: float"), "process[1].quantize[0].scheme",
                 "'float' is not a quantization scheme: linears that no group claims stay float");
}

TEST(RecipeValidation, SszInV0) {
  expect_invalid(v0_group("include: ['*self_attn*'], scheme: w8a8, weight: ssz"), "process[1].quantize[0].weight",
                 "weight ssz is a v1 quantizer");
}

TEST(RecipeValidation, UnknownWeightMethod) {
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: awq"),
                 "process[1].quantize[0].weight", "expected one of minmax, ssz, gptq");
}

TEST(RecipeValidation, SszStepsWithoutSsz) {
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, ssz_steps: 20"),
                 "process[1].quantize[0].ssz_steps", "ssz_steps applies only to weight: ssz");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: minmax, ssz_steps: 20"),
                 "process[1].quantize[0].ssz_steps", "ssz_steps applies only to weight: ssz");
}

TEST(RecipeValidation, GptqKeys) {
  expect_invalid(v0_group("include: ['*self_attn*'], scheme: w8a8, weight: gptq, gptq_fallback: ssz"),
                 "process[1].quantize[0].gptq_fallback", "expected one of minmax");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: ssz, gptq_min_tokens: 8"),
                 "process[1].quantize[0].gptq_min_tokens", "gptq_min_tokens applies only to weight: gptq");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: gptq, gptq_dampening: 0"),
                 "process[1].quantize[0].gptq_dampening", "out of range");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: gptq, gptq_act_order: yes"),
                 "process[1].quantize[0].gptq_act_order", "true, false");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: gptq, gptq_fallback: gptq"),
                 "process[1].quantize[0].gptq_fallback", "ssz, minmax");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: gptq, gptq_min_tokens: 0"),
                 "process[1].quantize[0].gptq_min_tokens", "0 is out of range");
}

TEST(RecipeValidation, SszStepsBelowOne) {
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, weight: ssz, ssz_steps: 0"),
                 "process[1].quantize[0].ssz_steps", "0 is out of range: expected an integer in 1..");
}

TEST(RecipeValidation, BatchSizeOutsideRange) {
  expect_invalid(kV0 + "data: {batch_size: 0}\nprocess:\n" + kQuantV0, "data.batch_size",
                 "0 is out of range: expected an integer in 1..16");
  expect_invalid(kV0 + "data: {batch_size: 17}\nprocess:\n" + kQuantV0, "data.batch_size", "1..16");
  expect_valid(kV0 + "data: {batch_size: 16}\nprocess:\n" + kQuantV0);
}

TEST(RecipeValidation, BatchSizeInV1) {
  expect_invalid(kV1 + "data: {batch_size: 4}\nprocess:\n" + kQuantV1, "data.batch_size",
                 "batch_size is v0 only");
}

TEST(RecipeValidation, AntiDatasetInV1) {
  expect_invalid(kV1 + "data: {anti_dataset: a.json}\nprocess:\n" + kQuantV1, "data.anti_dataset",
                 "anti_dataset is v0 only");
}

TEST(RecipeValidation, MinExpertTokens) {
  expect_invalid(kV1 + "data: {min_expert_tokens: 0}\nprocess:\n" + kQuantV1, "data.min_expert_tokens",
                 "0 is out of range");
  expect_invalid(kV1 + "data: {min_expert_tokens: many}\nprocess:\n" + kQuantV1, "data.min_expert_tokens",
                 "integer");
  TempDir dir("recipe_min_tokens");
  std::ofstream(dir.path() / "r.yaml") << kV0 + "data: {min_expert_tokens: 64}\nprocess:\n" + kM4 + kQuantV0;
  EXPECT_EQ(load_recipe(dir.path() / "r.yaml").min_expert_tokens, 64);
  std::ofstream(dir.path() / "d.yaml") << kV1 + "process:\n" + kQuantV1;
  EXPECT_EQ(load_recipe(dir.path() / "d.yaml").min_expert_tokens, 1) << "by default only experts with no token";
}

TEST(RecipeValidation, EmptyDatasetName) {
  expect_invalid(kV1 + "data: {calib_dataset: ''}\nprocess:\n" + kQuantV1, "data.calib_dataset",
                 "the dataset name is empty");
}

TEST(RecipeValidation, SaveFormatInV1) {
  expect_invalid(kV1 + "process:\n" + kQuantV1 + "save: {format: ascendV1}\n", "save.format",
                 "expected one of ascendV1-v1, compressed-tensors");
  expect_valid(kV1 + "process:\n" + kQuantV1 + "save: {}\n");
  expect_valid(kV1 + "process:\n" + kQuantV1 + "save: {format: ascendV1-v1}\n");
  expect_valid(kV1 + "process:\n" + kQuantV1 + "save: {format: compressed-tensors}\n");
}

TEST(RecipeValidation, UnknownSaveFormat) {
  expect_invalid(kV0 + "process:\n" + kQuantV0 + "save: {format: safetensors}\n", "save.format",
                 "expected one of ascendV1, mindie, compressed-tensors");
}

TEST(RecipeValidation, GroupWithNoInclude) {
  expect_invalid(v1_group("exclude: ['*gate*'], scheme: w8a8_dynamic"), "process[1].quantize[0].include",
                 "missing required key 'include'");
  expect_invalid(v1_group("include: [], scheme: w8a8_dynamic"), "process[1].quantize[0].include",
                 "the list is empty");
}

TEST(RecipeValidation, EmptyQuantizeList) {
  expect_invalid(kV1 + "process:\n" + kFlex + "  - quantize: []\n", "process[1].quantize",
                 "the quantize list is empty");
}

TEST(RecipeValidation, BadGlob) {
  expect_invalid(v1_group("include: ['*self_attn*', 'model.layers.[0-9.*'], scheme: w8a8_dynamic"),
                 "process[1].quantize[0].include[1]", "unterminated '['");
  expect_invalid(v1_group("include: ['*mlp.experts*'], exclude: ['[!'], scheme: w4a8_dynamic"),
                 "process[1].quantize[0].exclude[0]", "unterminated '['");
}

TEST(RecipeValidation, Int4OnlyForTheMlpProjections) {
  expect_invalid(v1_group("include: ['*'], exclude: ['*.mlp.gate'], scheme: w4a8_dynamic"), "process[1].quantize[0]",
                 "gives 'model.layers.0.self_attn.q_proj' int4 weights");
  expect_invalid(kV1 + "process:\n" + kFlex + "  - quantize:\n      - {include: ['*mlp.experts*'], scheme: "
                       "w4a8_dynamic}\n      - {include: ['model.layers.3.self_attn.o_proj'], scheme: w4a8_dynamic}\n",
                 "process[1].quantize[1]", "'model.layers.3.self_attn.o_proj' int4 weights");
  // First match wins: a catch-all int4 group after an attention group is fine.
  expect_valid(kV1 + "process:\n" + kFlex + "  - quantize:\n      - {include: ['*self_attn*'], scheme: "
                     "w8a8_dynamic}\n      - {include: ['*'], exclude: ['*.mlp.gate'], scheme: w4a8_dynamic}\n");
}

TEST(RecipeValidation, GroupThatClaimsTheRouter) {
  expect_invalid(v1_group("include: ['*'], scheme: w8a8_dynamic"), "process[1].quantize[0]",
                 "claims the router 'model.layers.0.mlp.gate', but the router stays float");
  expect_invalid(v1_group("include: ['*.mlp.*'], exclude: ['*experts*'], scheme: w8a8_dynamic"),
                 "process[1].quantize[0]", "the router stays float");
  // A layer-specific glob is caught too, not only layer 0.
  expect_invalid(v1_group("include: ['model.layers.5.*'], scheme: w8a8_dynamic"), "process[1].quantize[0]",
                 "claims the router 'model.layers.5.mlp.gate'");
  // The second group: the first excluding the router does not protect it from a later catch-all.
  expect_invalid(kV0 + "process:\n  - quantize:\n      - {include: ['*.mlp.*'], exclude: ['*.mlp.gate'], scheme: "
                       "w8a8_dynamic}\n      - {include: ['*'], scheme: w8a8}\n",
                 "process[0].quantize[1]", "the router stays float");
  expect_valid(v1_group("include: ['*'], exclude: ['*.mlp.gate'], scheme: w8a8_dynamic"));
}

TEST(RecipeValidation, BadMatchBlock) {
  expect_invalid(kV1 + "match: {model_types: [Qwen3-30B], quant_type: w4a16}\nprocess:\n" + kQuantV1,
                 "match.quant_type", "expected w8a8 or w4a8");
  expect_invalid(kV1 + "match: {model_types: [], quant_type: w4a8}\nprocess:\n" + kQuantV1, "match.model_types",
                 "the list is empty");
  expect_invalid(kV1 + "match: {model_types: [Qwen3-30B]}\nprocess:\n" + kQuantV1, "match.quant_type",
                 "missing required key 'quant_type'");
}

// yaml-cpp keeps both entries of a repeated key, so duplicates are detected (at any depth).
TEST(RecipeValidation, DuplicateYamlKeys) {
  expect_invalid(kV0 + "process:\n" + kQuantV0 + "apiversion: modelslim_v1\n", "apiversion",
                 "duplicate key 'apiversion'");
  expect_invalid(kV0 + "data:\n  batch_size: 4\n  batch_size: 8\nprocess:\n" + kQuantV0, "data.batch_size",
                 "duplicate key");
  expect_invalid(v1_group("include: ['*self_attn*'], scheme: w8a8_dynamic, scheme: w4a8_dynamic"),
                 "process[1].quantize[0].scheme", "duplicate key");
}

}  // namespace
}  // namespace moeslim::recipe
