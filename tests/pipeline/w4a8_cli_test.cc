// `moeslim quant` on msModelSlim's one-click W4A8 path and on moeslim's -plus and GPTQ recipes, end to end on the
// bundled tiny models (models/): the outputs pass `inspect`, hold int4 experts in the v1 layout,
// and evaluate close to the float model with the runtime's integer arithmetic; the MoE smoothing subgraphs
// beat msModelSlim's recipes on the outlier fixture; the Qwen3-30B recipe keeps layers 41-47 at int8. Also the
// compressed-tensors outputs: the same numbers as msModelSlim's layout, and the W4A16 recipe.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "pipeline/quant_run.h"
#include "common/test_paths.h"
#include "io/safetensors_reader.h"

namespace moeslim::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path model(const std::string& name) { return source_dir() / "models" / name; }
const std::string kEval = "--eval_data '" + (bundled_data_dir() / "eval_valid.jsonl").string() + "'";
const std::string kConfigs = (source_dir() / "configs" / "qwen3_moe").string();


double change(const json& report) { return report["evaluation"]["perplexity_change"].get<double>(); }
double kl(const json& report) { return report["evaluation"]["mean_kl"].get<double>(); }

TEST(W4A8Cli, OneClickQwen3_30BOnTheOutlierModelAndThePlusRecipe) {
  TempDir dir("w4a8_outliers");
  const fs::path m = model("tiny-qwen3-moe-outliers");
  const json w4a8 = quantize(m, dir.path() / "w4a8", "--model_type Qwen3-30B --quant_type w4a8 " + kEval);
  const json plain = quantize(m, dir.path() / "plain", "--model_type Qwen3-30B --quant_type w4a8 --anti_method none " + kEval);
  const json plus = quantize(m, dir.path() / "plus", "--config '" + kConfigs + "/qwen3-30b-w4a8-plus.yaml' " + kEval);
  ASSERT_FALSE(w4a8.is_null());
  ASSERT_FALSE(plain.is_null());
  ASSERT_FALSE(plus.is_null());
  for (const char* d : {"w4a8", "plain", "plus"}) expect_inspect_accepts(dir.path() / d);

  // The issue's bars: within 5 % of float (measured about +0.8 %); flex smoothing helps (without it about
  // +2.3 %); the -plus recipe stays within 1 % (measured about +0.2 %) and beats msModelSlim's recipe.
  EXPECT_LT(std::abs(change(w4a8)), 0.05) << w4a8["evaluation"].dump();
  EXPECT_GT(change(plain), change(w4a8));
  EXPECT_GT(kl(plain), kl(w4a8));
  EXPECT_LT(std::abs(change(plus)), 0.01) << plus["evaluation"].dump();
  EXPECT_LT(kl(plus), kl(w4a8));
  EXPECT_EQ(w4a8["recipe"], "qwen3-30b-w4a8");
  EXPECT_EQ(w4a8["apiversion"], "modelslim_v1");
  // α/β were searched for both subgraphs of every layer, and every routed token is counted.
  for (const json& layer : w4a8["per_layer"]) {
    EXPECT_TRUE(layer["smoothing"]["ov"]["searched"].get<bool>());
    EXPECT_TRUE(layer["smoothing"]["norm-linear"]["searched"].get<bool>());
    std::int64_t routed = 0;
    for (const json& c : layer["expert_tokens"]) routed += c.get<std::int64_t>();
    EXPECT_GT(routed, 0);
  }

  // The v1 layout (output-format spec §5): int4 experts packed along the output dimension, fp32 scales,
  // scale_bias per projection, W8A8_DYNAMIC attention, the description's model-level type W8A8_DYNAMIC.
  const fs::path out = dir.path() / "w4a8";
  const json d = read_json(out / "quant_model_description.json");
  EXPECT_EQ(d["model_quant_type"], "W8A8_DYNAMIC");
  EXPECT_EQ(d["model.layers.0.self_attn.q_proj.weight"], "W8A8_DYNAMIC");
  EXPECT_EQ(d["model.layers.0.mlp.experts.0.up_proj.weight"], "W4A8_DYNAMIC");
  EXPECT_EQ(d["model.layers.0.mlp.experts.0.down_proj.scale_bias"], "W4A8_DYNAMIC");
  EXPECT_EQ(d["model.layers.0.mlp.gate.weight"], "FLOAT");
  EXPECT_FALSE(d.contains("model.layers.0.input_layernorm.bias"));
  const json config = read_json(out / "config.json");
  EXPECT_FALSE(config.contains("quantize"));
  EXPECT_FALSE(config.contains("quantization_config"));
  const json index = read_json(out / "quant_model_weights.safetensors.index.json");
  const std::string shard = index["weight_map"]["model.layers.0.mlp.experts.0.up_proj.weight"];
  const auto f = io::SafetensorsFile::open(out / shard);
  const json src_config = read_json(m / "config.json");
  const std::int64_t inter = src_config["moe_intermediate_size"], hidden = src_config["hidden_size"];
  EXPECT_EQ(f.tensor("model.layers.0.mlp.experts.0.up_proj.weight").shape(), (Shape{inter / 2, hidden}));
  EXPECT_EQ(f.tensor("model.layers.0.mlp.experts.0.up_proj.weight_scale").dtype(), DType::kF32);
  EXPECT_EQ(f.tensor("model.layers.0.mlp.experts.0.down_proj.scale_bias").shape(), (Shape{hidden, 16}));
  EXPECT_EQ(f.tensor("model.layers.0.self_attn.q_proj.weight").dtype(), DType::kI8);
}

TEST(W4A8Cli, Qwen3_235BRecipeOnTheCleanModel) {
  TempDir dir("w4a8_clean");
  const json r = quantize(model("tiny-qwen3-moe"), dir.path() / "out",
                          "--model_type Qwen3-235B --quant_type w4a8 " + kEval);
  ASSERT_FALSE(r.is_null());
  expect_inspect_accepts(dir.path() / "out");
  EXPECT_EQ(r["recipe"], "qwen3-235b-w4a8");
  EXPECT_LT(std::abs(change(r)), 0.05) << r["evaluation"].dump();
  for (const json& layer : r["per_layer"]) EXPECT_FALSE(layer["smoothing"].contains("ov"));  // norm-linear only
}

TEST(W4A8Cli, W8A8PlusRecipeSmoothsTheMoeInput) {
  TempDir dir("w8a8_plus");
  const fs::path m = model("tiny-qwen3-moe-outliers");
  const json plus = quantize(m, dir.path() / "plus", "--config '" + kConfigs + "/qwen3-moe-w8a8-plus.yaml' " + kEval);
  ASSERT_FALSE(plus.is_null());
  expect_inspect_accepts(dir.path() / "plus");
  // The issue's target: within 0.15 % of float (measured +0.00 %; msModelSlim's m4 recipe: +0.26 %).
  EXPECT_LT(std::abs(change(plus)), 0.0015) << plus["evaluation"].dump();
  for (const json& layer : plus["per_layer"]) {
    EXPECT_TRUE(layer["smoothing"].contains("moe-input"));
    EXPECT_TRUE(layer["smoothing"].contains("up-down"));
  }
}

// A 48-layer model with tiny widths (synth's tiny preset): the Qwen3-30B recipe quantizes the experts of
// layers 0-40 to int4 and keeps those of 41-47 at int8 (W8A8_DYNAMIC), as msModelSlim's practice file does.
TEST(W4A8Cli, Qwen3_30BRecipeKeepsLayers41To47AtInt8) {
  TempDir dir("w4a8_48");
  const fs::path synth = dir.path() / "synth48";
  CommandResult r = run_moeslim("synth --preset tiny --layers 48 --out " + shell_quoted(synth));
  ASSERT_EQ(r.status, 0) << r.err;
  const fs::path prompts = dir.path() / "prompts.json";
  { std::ofstream(prompts) << R"(["Question: what is 2 + 3? Let's think step by step.", "The capital of France is"])"; }
  const json report = quantize(synth, dir.path() / "out",
                               "--model_type Qwen3-30B --quant_type w4a8 --calib_dataset " + shell_quoted(prompts));
  ASSERT_FALSE(report.is_null());
  expect_inspect_accepts(dir.path() / "out");
  const json d = read_json(dir.path() / "out" / "quant_model_description.json");
  for (int layer = 0; layer < 48; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".mlp.experts.0.";
    const std::string expected = layer >= 41 ? "W8A8_DYNAMIC" : "W4A8_DYNAMIC";
    EXPECT_EQ(d[p + "gate_proj.weight"], expected) << "layer " << layer;
    EXPECT_EQ(d.contains(p + "down_proj.scale_bias"), layer < 41) << "layer " << layer;
  }
}

// The issue's targets for the best W4A8 recipe (rotation, flex_smooth on every subgraph, GPTQ with act_order) on
// the massive-activation model: ≤ +0.5 % perplexity, mean KL ≤ 0.005, top-1 ≥ 95 % (measured −0.07 %, 0.0048,
// 95.7 %; msModelSlim's one-click recipe: +5.42 %, 0.0685, 81.9 %). On the other two models it is no worse than
// W4A8-plus (+0.16 % outliers, +0.18 % clean; measured +0.05 % and +0.04 %). The output is msModelSlim's
// layout (inspect accepts it) and GPTQ left no linear to its fallback here (every expert saw ≥ 32 tokens).
TEST(W4A8Cli, RotGptqRecipeMeetsTheMassiveActivationTargets) {
  TempDir dir("w4a8_rot_gptq");
  const std::string recipe = "--config '" + kConfigs + "/qwen3-moe-w4a8-rot-gptq.yaml' " + kEval;
  const json massive = quantize(model("tiny-qwen3-moe-massive"), dir.path() / "massive", recipe);
  ASSERT_FALSE(massive.is_null());
  expect_inspect_accepts(dir.path() / "massive");
  EXPECT_LE(change(massive), 0.005) << massive["evaluation"].dump();
  EXPECT_LE(kl(massive), 0.005) << massive["evaluation"].dump();
  EXPECT_GE(massive["evaluation"]["top1_agreement"].get<double>(), 0.95) << massive["evaluation"].dump();
  for (const json& layer : massive["per_layer"]) EXPECT_FALSE(layer.contains("weight_fallbacks")) << layer.dump();
  EXPECT_EQ(massive["steps"][2]["settings"]["groups"][1]["weight"]["method"], "gptq");
  EXPECT_TRUE(massive["steps"][2]["settings"]["groups"][1]["weight"]["gptq_act_order"].get<bool>());
  for (const auto& [name, bar] : {std::pair{"tiny-qwen3-moe-outliers", 0.0016}, std::pair{"tiny-qwen3-moe", 0.0018}}) {
    const json r = quantize(model(name), dir.path() / name, recipe);
    ASSERT_FALSE(r.is_null());
    EXPECT_LE(change(r), bar) << name << " " << r["evaluation"].dump();
  }
}

// Rotation composes with flex_smooth in the v1 pipeline: with every linear left float (a group that claims
// nothing), rotating and smoothing the massive model changes its function only by the bf16 roundings of the
// rotated and smoothed weights.
TEST(W4A8Cli, RotationAndFlexSmoothingLeaveTheFloatModelsFunction) {
  TempDir dir("rot_flex_float");
  const fs::path recipe = dir.path() / "rot-flex-float.yaml";
  std::ofstream(recipe) << "apiversion: modelslim_v1\nprocess:\n  - rotate: {method: hadamard}\n"
                           "  - smooth: {method: flex_smooth, subgraphs: [norm-linear, ov, moe-input, up-down]}\n"
                           "  - quantize:\n      - {include: ['no-such-module'], scheme: w8a8_dynamic}\n";
  const json r = quantize(model("tiny-qwen3-moe-massive"), dir.path() / "out", "--config '" + recipe.string() + "' " + kEval);
  ASSERT_FALSE(r.is_null());
  EXPECT_LT(std::abs(change(r)), 0.002) << r["evaluation"].dump();
  EXPECT_LT(kl(r), 5e-4) << r["evaluation"].dump();
  EXPECT_GT(r["evaluation"]["top1_agreement"].get<double>(), 0.98) << r["evaluation"].dump();
}

// A recipe with `save: format: compressed-tensors` writes the same numbers as a compressed-tensors checkpoint
// (int-quantized: W8A8 attention, W4A8 experts, routers ignored), which `inspect` accepts and which evaluates to
// exactly the msModelSlim output's perplexity, KL and top-1; a recipe with m4's shift is refused before any work,
// naming the module and the reason.
TEST(W4A8Cli, CompressedTensorsOutputHoldsTheSameNumbersAsMsModelSlims) {
  TempDir dir("w4a8_compressed_tensors");
  const std::string bundled = kConfigs + "/qwen3-235b-w4a8.yaml";
  std::ofstream(dir.path() / "ct.yaml") << read_whole_file(bundled) << "save:\n  format: compressed-tensors\n";
  const json ms = quantize(model("tiny-qwen3-moe"), dir.path() / "ms", "--config '" + bundled + "' " + kEval);
  const json ct = quantize(model("tiny-qwen3-moe"), dir.path() / "ct",
                           "--config '" + (dir.path() / "ct.yaml").string() + "' " + kEval);
  ASSERT_FALSE(ms.is_null());
  ASSERT_FALSE(ct.is_null());
  expect_inspect_accepts(dir.path() / "ct");
  for (const char* key : {"quantized_perplexity", "mean_kl", "top1_agreement"}) {
    EXPECT_EQ(ct["evaluation"][key].get<double>(), ms["evaluation"][key].get<double>()) << key;
  }
  const json config = read_json(dir.path() / "ct" / "config.json");
  EXPECT_EQ(config["quantization_config"]["quant_method"], "compressed-tensors");
  EXPECT_EQ(config["quantization_config"]["format"], "int-quantized");
  EXPECT_FALSE(fs::exists(dir.path() / "ct" / "quant_model_description.json"));

  std::string m4 = read_whole_file(kConfigs + "/qwen3-moe-w8a8.yaml");
  const std::string ascend = "format: ascendV1";
  ASSERT_NE(m4.find(ascend), std::string::npos);
  std::ofstream(dir.path() / "m4.yaml") << m4.replace(m4.find(ascend), ascend.size(), "format: compressed-tensors");
  const CommandResult refused = run_moeslim("quant --model_path " + shell_quoted(model("tiny-qwen3-moe")) +
                                            " --save_path " + shell_quoted(dir.path() / "m4") + " --config " +
                                            shell_quoted(dir.path() / "m4.yaml"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("model.layers.0.self_attn.q_proj"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("m4"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir.path() / "m4"));
}

// The bundled W4A16 recipe (flex_smooth, GPTQ int4 per group of 128, compressed-tensors pack-quantized) on the
// outlier model: within the issue's +1 % of float (measured +0.04 %), accepted by `inspect`, and `eval` of the
// written directory (dequantizing per group as vLLM's WNA16 kernels do) gives the report's numbers exactly.
TEST(W4A8Cli, W4A16RecipeWritesPackQuantizedThatEvalAndInspectRead) {
  TempDir dir("w4a16_compressed_tensors");
  const fs::path m = model("tiny-qwen3-moe-outliers");
  const json r = quantize(m, dir.path() / "out", "--config '" + kConfigs + "/qwen3-moe-w4a16-gptq.yaml' " + kEval);
  ASSERT_FALSE(r.is_null());
  EXPECT_LT(std::abs(change(r)), 0.01) << r["evaluation"].dump();
  expect_inspect_accepts(dir.path() / "out");
  const CommandResult inspect = run_moeslim("inspect " + shell_quoted(dir.path() / "out"));
  EXPECT_NE(inspect.out.find("W4A16"), std::string::npos) << inspect.out;

  const json q = read_json(dir.path() / "out" / "config.json")["quantization_config"];
  EXPECT_EQ(q["format"], "pack-quantized");
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["strategy"], "group");

  const CommandResult e = run_moeslim("eval --json --model " + shell_quoted(dir.path() / "out") + " --data " +
                                      shell_quoted(bundled_data_dir() / "eval_valid.jsonl") + " --reference " +
                                      shell_quoted(m));
  ASSERT_EQ(e.status, 0) << e.err;
  const json ev = json::parse(e.out);  // printed with 10 significant digits
  for (const auto& [key, report_key] : {std::pair{"perplexity", "quantized_perplexity"}, {"mean_kl", "mean_kl"},
                                        {"top1_agreement", "top1_agreement"}}) {
    const double want = r["evaluation"][report_key].get<double>();
    EXPECT_NEAR(ev[key].get<double>(), want, 1e-9 * want) << key;
  }
  // Router agreement, on the evaluation text (eval and the report agree) and per layer on the calibration set.
  const json& router = r["evaluation"]["router_agreement"];
  EXPECT_NEAR(ev["router_agreement"]["exact"].get<double>(), router["exact"].get<double>(), 1e-9);
  ASSERT_EQ(ev["router_agreement"]["per_layer"].size(), 4u);
  EXPECT_GT(router["exact"].get<double>(), 0.5);
  EXPECT_LT(router["exact"].get<double>(), 1.0);
  EXPECT_GE(router["mean_overlap"].get<double>(), router["exact"].get<double>());
  for (const json& layer : r["per_layer"]) {
    const json& a = layer["router_agreement"];
    EXPECT_GT(a["tokens"].get<std::int64_t>(), 0);
    EXPECT_GT(a["exact"].get<double>(), 0.5) << layer["layer"];
    EXPECT_LE(a["exact"].get<double>(), 1.0) << layer["layer"];
  }
}

// The starved-expert policy (data.min_expert_tokens): an expert that fewer calibration tokens reached gets no
// up-down smoothing and GPTQ's data-free fallback, and the report lists it; the others are fitted as before.
TEST(W4A8Cli, ExpertsUnderMinExpertTokensAreQuantizedFromTheirWeightsAlone) {
  TempDir dir("w4a8_min_expert_tokens");
  constexpr std::int64_t kFloor = 5000;
  const fs::path recipe = dir.path() / "starved.yaml";
  std::ofstream(recipe) << "apiversion: modelslim_v1\ndata:\n  min_expert_tokens: " << kFloor << "\nprocess:\n"
                           "  - smooth: {method: flex_smooth, subgraphs: [norm-linear, up-down]}\n"
                           "  - quantize:\n"
                           "      - {include: ['*self_attn*'], scheme: w8a8_dynamic}\n"
                           "      - {include: ['*mlp.experts*'], scheme: w4a8_dynamic, weight: gptq}\n";
  const json r = quantize(model("tiny-qwen3-moe"), dir.path() / "out", "--config '" + recipe.string() + "'");
  ASSERT_FALSE(r.is_null());
  EXPECT_EQ(r["starved_expert_min_tokens"], kFloor);
  bool some_layer_is_split = false;
  for (const json& layer : r["per_layer"]) {
    std::set<std::string> starved_linears;
    std::vector<std::int64_t> starved;
    for (std::size_t e = 0; e < layer["expert_tokens"].size(); ++e) {
      if (layer["expert_tokens"][e].get<std::int64_t>() >= kFloor) continue;
      starved.push_back(static_cast<std::int64_t>(e));
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
        starved_linears.insert("model.layers." + layer["layer"].dump() + ".mlp.experts." + std::to_string(e) + "." +
                               proj);
      }
    }
    some_layer_is_split = some_layer_is_split || (!starved.empty() && starved.size() < layer["expert_tokens"].size());
    EXPECT_EQ(layer["starved_experts"], json(starved)) << layer["layer"];
    EXPECT_EQ(layer["smoothing"]["up-down"]["experts_smoothed"].get<std::size_t>(),
              layer["expert_tokens"].size() - starved.size());
    std::set<std::string> fallen_back;
    for (const json& f : layer.value("weight_fallbacks", json::array())) {
      fallen_back.insert(f["module"].get<std::string>());
      EXPECT_NE(f["reason"].get<std::string>().find("fewer than min_expert_tokens (5000)"), std::string::npos) << f;
    }
    EXPECT_EQ(fallen_back, starved_linears) << layer["layer"];
  }
  EXPECT_TRUE(some_layer_is_split) << "the floor should starve some experts of some layer and not others";
}

}  // namespace
}  // namespace moeslim::testing
