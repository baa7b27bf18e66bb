// The bundled recipes in configs/ (what each assigns to which linear), the one-click lookup and dataset
// resolution. Expected assignments follow docs/msmodelslim-algorithms.md §4.2 (W8A8) and §6.2 (W4A8).
#include <fstream>

#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "core/error.h"
#include "recipe/recipe.h"

namespace moeslim::recipe {
namespace {

using moeslim::testing::source_dir;
using moeslim::testing::TempDir;
using quant::QuantScheme;

std::filesystem::path configs() { return source_dir() / "configs"; }

Recipe bundled(const std::string& file) { return load_recipe(configs() / "qwen3_moe" / file); }

// The scheme and weight method a recipe gives a module, or "float" when no group claims it.
std::string assignment(const Recipe& r, const std::string& module) {
  const quant::QuantGroup* g = r.group_for(module);
  if (g == nullptr) return "float";
  return std::string(quant::quant_scheme_name(g->scheme)) + " " + g->method->name();
}

// The recipe's smoothing step's settings (method, subgraphs, alpha, beta), or null when it has none.
nlohmann::ordered_json smooth(const Recipe& r) {
  for (const auto& s : r.steps) {
    if (s->phase() == "smoothing") return s->settings();
  }
  return nullptr;
}
std::vector<std::string> subgraphs(const Recipe& r) { return smooth(r)["subgraphs"].get<std::vector<std::string>>(); }
const std::vector<quant::QuantGroup>& groups(const Recipe& r) { return r.quantize_step().groups(); }
using Names = std::vector<std::string>;

std::string expert(int layer, int e, const char* proj) {
  return "model.layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(e) + "." + proj;
}
std::string attn(int layer, const char* proj) {
  return "model.layers." + std::to_string(layer) + ".self_attn." + proj;
}
std::string router(int layer) { return "model.layers." + std::to_string(layer) + ".mlp.gate"; }

TEST(BundledRecipes, AllLoadSortedByName) {
  const std::vector<Recipe> all = bundled_recipes(configs());
  std::vector<std::string> names;
  for (const auto& r : all) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"qwen3-235b-w4a8", "qwen3-235b-w4a8-gptq", "qwen3-235b-w4a8-rot",
                                             "qwen3-30b-w4a8", "qwen3-30b-w4a8-gptq", "qwen3-30b-w4a8-plus",
                                             "qwen3-30b-w4a8-rot", "qwen3-moe-w4a16-gptq", "qwen3-moe-w4a8-rot-gptq",
                                             "qwen3-moe-w4a8-rot-gptq-ct", "qwen3-moe-w8a8", "qwen3-moe-w8a8-dynamic",
                                             "qwen3-moe-w8a8-plus"}));
  for (const auto& r : all) {
    EXPECT_EQ(r.name, r.file.stem().string()) << "name and file stem differ";
    EXPECT_FALSE(r.description.empty()) << r.name;
    EXPECT_FALSE(r.use_when.empty()) << r.name << " says when to pick it";
  }
}

TEST(BundledRecipes, Qwen3_30B_W4A8) {
  const Recipe r = bundled("qwen3-30b-w4a8.yaml");
  EXPECT_EQ(r.api, ApiVersion::kV1);
  EXPECT_EQ(r.model_types, std::vector<std::string>{"Qwen3-30B"});
  EXPECT_EQ(r.quant_type, "w4a8");
  EXPECT_EQ(r.calib_dataset, "qwen3-moe_calib_prompt_50.json");
  EXPECT_EQ(r.anti_dataset, "");
  EXPECT_FALSE(r.batch_size.has_value());
  EXPECT_EQ(r.find_step("rotate"), nullptr);
  ASSERT_TRUE(r.has_smoothing());
  EXPECT_EQ(smooth(r)["method"], "flex_smooth");
  EXPECT_EQ(subgraphs(r), (Names{"norm-linear", "ov"}));
  EXPECT_EQ(smooth(r)["alpha"], "searched");  // §6.3
  EXPECT_FALSE(smooth(r).contains("beta"));
  ASSERT_EQ(groups(r).size(), 3u);

  EXPECT_EQ(assignment(r, expert(40, 3, "up_proj")), "W4A8_DYNAMIC ssz");
  EXPECT_EQ(assignment(r, expert(0, 127, "down_proj")), "W4A8_DYNAMIC ssz");
  EXPECT_EQ(assignment(r, expert(4, 0, "gate_proj")), "W4A8_DYNAMIC ssz");  // "layers.4" is not "layers.41"
  for (int layer = 41; layer <= 47; ++layer) {
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
      EXPECT_EQ(assignment(r, expert(layer, 5, proj)), "W8A8_DYNAMIC ssz") << layer << proj;
    }
  }
  for (int layer : {0, 41, 47}) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      EXPECT_EQ(assignment(r, attn(layer, proj)), "W8A8_DYNAMIC ssz") << layer << proj;
    }
    EXPECT_EQ(assignment(r, router(layer)), "float");
  }
  EXPECT_EQ(assignment(r, "lm_head"), "float");
  EXPECT_EQ(groups(r)[2].method->settings()["ssz_steps"], 50);
}

TEST(BundledRecipes, Qwen3_235B_W4A8) {
  const Recipe r = bundled("qwen3-235b-w4a8.yaml");
  EXPECT_EQ(r.api, ApiVersion::kV1);
  EXPECT_EQ(r.model_types, std::vector<std::string>{"Qwen3-235B"});
  EXPECT_EQ(r.quant_type, "w4a8");
  ASSERT_TRUE(r.has_smoothing());
  EXPECT_EQ(smooth(r)["method"], "flex_smooth");
  EXPECT_EQ(subgraphs(r), Names{"norm-linear"});
  ASSERT_EQ(groups(r).size(), 2u);
  for (int layer : {0, 45, 93}) {
    EXPECT_EQ(assignment(r, attn(layer, "q_proj")), "W8A8_DYNAMIC minmax");
    EXPECT_EQ(assignment(r, attn(layer, "o_proj")), "W8A8_DYNAMIC minmax");
    EXPECT_EQ(assignment(r, expert(layer, 100, "up_proj")), "W4A8_DYNAMIC ssz");  // no int8 tail layers
    EXPECT_EQ(assignment(r, router(layer)), "float");
  }
  EXPECT_EQ(assignment(r, "lm_head"), "float");
}

TEST(BundledRecipes, Qwen3_MoE_W8A8) {
  const Recipe r = bundled("qwen3-moe-w8a8.yaml");
  EXPECT_EQ(r.api, ApiVersion::kV0);
  EXPECT_EQ(r.model_types, (std::vector<std::string>{"Qwen3-30B", "Qwen3-235B"}));
  EXPECT_EQ(r.quant_type, "w8a8");
  EXPECT_EQ(r.anti_dataset, "qwen3-moe_anti_prompt_50.json");
  EXPECT_EQ(r.calib_dataset, "qwen3-moe_calib_prompt_50.json");
  EXPECT_EQ(r.batch_size, 4);
  EXPECT_EQ(r.save_format, SaveFormat::kAscendV1);
  ASSERT_TRUE(r.has_smoothing());
  EXPECT_EQ(smooth(r)["method"], "m4");
  EXPECT_EQ(subgraphs(r), (Names{"norm-linear", "ov"}));
  // §4.2's table.
  for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    EXPECT_EQ(assignment(r, attn(2, proj)), "W8A8 minmax") << proj;
  }
  for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
    EXPECT_EQ(assignment(r, expert(2, 9, proj)), "W8A8_DYNAMIC minmax") << proj;
  }
  EXPECT_EQ(assignment(r, router(2)), "float");
  EXPECT_EQ(assignment(r, "lm_head"), "float");
}

TEST(BundledRecipes, PlusVariantsAddSubgraphsAndHaveNoMatch) {
  const Recipe w8 = bundled("qwen3-moe-w8a8-plus.yaml");
  const Recipe w8_base = bundled("qwen3-moe-w8a8.yaml");
  const Recipe w4 = bundled("qwen3-30b-w4a8-plus.yaml");
  const Recipe w4_base = bundled("qwen3-30b-w4a8.yaml");
  const Names all = {"norm-linear", "ov", "moe-input", "up-down"};
  for (const auto* pair : {&w8, &w4}) {
    EXPECT_TRUE(pair->quant_type.empty()) << pair->name;
    EXPECT_TRUE(pair->model_types.empty()) << pair->name;
    ASSERT_TRUE(pair->has_smoothing());
    EXPECT_EQ(subgraphs(*pair), all) << pair->name;
  }
  EXPECT_EQ(smooth(w8)["method"], "m4");
  EXPECT_EQ(smooth(w4)["method"], "flex_smooth");
  for (const std::string& m : {attn(1, "q_proj"), expert(1, 2, "up_proj"), expert(41, 2, "down_proj"), router(1),
                                std::string("lm_head")}) {
    EXPECT_EQ(assignment(w8, m), assignment(w8_base, m)) << m;
    EXPECT_EQ(assignment(w4, m), assignment(w4_base, m)) << m;
  }
  EXPECT_EQ(w8.batch_size, w8_base.batch_size);
  EXPECT_EQ(w8.anti_dataset, w8_base.anti_dataset);
}

// The compressed-tensors recipes (docs/compressed-tensors.md): what each writes, for which runtime.
TEST(BundledRecipes, CompressedTensorsRecipes) {
  const Names all_four = {"norm-linear", "ov", "moe-input", "up-down"};
  const Recipe w4a16 = bundled("qwen3-moe-w4a16-gptq.yaml");
  EXPECT_EQ(w4a16.save_format, SaveFormat::kCompressedTensors);
  EXPECT_EQ(w4a16.find_step("rotate"), nullptr);
  EXPECT_EQ(subgraphs(w4a16), all_four);
  for (const std::string& m : {attn(0, "q_proj"), attn(47, "o_proj"), expert(3, 127, "down_proj")}) {
    EXPECT_EQ(assignment(w4a16, m), "W4A16 gptq") << m;
    EXPECT_EQ(w4a16.group_for(m)->grid, (quant::WeightGrid{128, true})) << m;
  }
  EXPECT_EQ(assignment(w4a16, router(0)), "float");

  const Recipe w8a8 = bundled("qwen3-moe-w8a8-dynamic.yaml");
  EXPECT_EQ(w8a8.save_format, SaveFormat::kCompressedTensors);
  EXPECT_NE(w8a8.find_step("rotate"), nullptr);
  EXPECT_EQ(subgraphs(w8a8), all_four);
  EXPECT_EQ(assignment(w8a8, attn(5, "v_proj")), "W8A8_DYNAMIC gptq");
  EXPECT_EQ(assignment(w8a8, expert(5, 0, "up_proj")), "W8A8_DYNAMIC gptq");
  EXPECT_EQ(assignment(w8a8, router(5)), "float");

  // The same process as qwen3-moe-w4a8-rot-gptq, saved as compressed-tensors.
  const Recipe w4a8 = bundled("qwen3-moe-w4a8-rot-gptq-ct.yaml");
  const Recipe ascend = bundled("qwen3-moe-w4a8-rot-gptq.yaml");
  EXPECT_EQ(w4a8.save_format, SaveFormat::kCompressedTensors);
  EXPECT_EQ(w4a8.step_names(), ascend.step_names());
  for (std::size_t i = 0; i < w4a8.steps.size(); ++i) EXPECT_EQ(w4a8.steps[i]->settings(), ascend.steps[i]->settings());
  EXPECT_EQ(assignment(w4a8, attn(1, "k_proj")), "W8A8_DYNAMIC gptq");
  EXPECT_EQ(assignment(w4a8, expert(1, 9, "gate_proj")), "W4A8_DYNAMIC gptq");
}

TEST(BundledRecipes, DatasetsResolveToTheBundledData) {
  const auto data = moeslim::testing::bundled_data_dir();
  for (const Recipe& r : bundled_recipes(configs())) {
    ASSERT_FALSE(r.calib_dataset.empty()) << r.name;
    EXPECT_EQ(resolve_dataset(r, r.calib_dataset, "data.calib_dataset", data), data / r.calib_dataset) << r.name;
    if (!r.anti_dataset.empty()) {
      EXPECT_EQ(resolve_dataset(r, r.anti_dataset, "data.anti_dataset", data), data / r.anti_dataset) << r.name;
    }
  }
}

TEST(OneClick, ResolvesEveryModelTypeAndQuantType) {
  EXPECT_EQ(find_bundled_recipe(configs(), "Qwen3-30B", "w4a8").name, "qwen3-30b-w4a8");
  EXPECT_EQ(find_bundled_recipe(configs(), "Qwen3-235B", "w4a8").name, "qwen3-235b-w4a8");
  EXPECT_EQ(find_bundled_recipe(configs(), "Qwen3-30B", "w8a8").name, "qwen3-moe-w8a8");
  EXPECT_EQ(find_bundled_recipe(configs(), "Qwen3-235B", "w8a8").name, "qwen3-moe-w8a8");
}

TEST(OneClick, IsCaseInsensitive) {
  EXPECT_EQ(find_bundled_recipe(configs(), "qwen3-30b", "W4A8").name, "qwen3-30b-w4a8");
  EXPECT_EQ(find_bundled_recipe(configs(), "QWEN3-235B", "W8a8").name, "qwen3-moe-w8a8");
}

TEST(OneClick, UnknownPairListsTheAvailableOnes) {
  try {
    find_bundled_recipe(configs(), "Qwen3-Coder-480B", "w4a8");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    const std::string m = e.what();
    EXPECT_NE(m.find("'Qwen3-Coder-480B'"), std::string::npos) << m;
    for (const char* pair : {"Qwen3-30B w4a8 (qwen3_moe/qwen3-30b-w4a8.yaml)",
                             "Qwen3-235B w4a8 (qwen3_moe/qwen3-235b-w4a8.yaml)",
                             "Qwen3-30B w8a8 (qwen3_moe/qwen3-moe-w8a8.yaml)",
                             "Qwen3-235B w8a8 (qwen3_moe/qwen3-moe-w8a8.yaml)"}) {
      EXPECT_NE(m.find(pair), std::string::npos) << pair << "\n" << m;
    }
    EXPECT_EQ(m.find("plus"), std::string::npos) << "recipes without a match block are not one-click: " << m;
  }
  EXPECT_THROW(find_bundled_recipe(configs(), "Qwen3-30B", "w4a16"), Error);
}

TEST(OneClick, TwoMatchingFilesAreAnError) {
  TempDir dir("recipe_tie");
  const std::string body =
      "apiversion: modelslim_v1\nmatch: {model_types: [Qwen3-30B], quant_type: w4a8}\n"
      "process:\n  - quantize:\n      - {include: ['*mlp.experts*'], scheme: w4a8_dynamic}\n";
  std::ofstream(dir.path() / "a.yaml") << body;
  std::ofstream(dir.path() / "b.yaml") << body;
  try {
    find_bundled_recipe(dir.path(), "qwen3-30b", "w4a8");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string m = e.what();
    EXPECT_NE(m.find((dir.path() / "a.yaml").string()), std::string::npos) << m;
    EXPECT_NE(m.find((dir.path() / "b.yaml").string()), std::string::npos) << m;
  }
}

TEST(ResolveDataset, AbsoluteBesideTheRecipeThenBundled) {
  TempDir dir("recipe_data");
  TempDir data("recipe_data_bundled");
  std::ofstream(dir.path() / "r.yaml")
      << "apiversion: modelslim_v1\nprocess:\n  - quantize:\n      - {include: ['*'], exclude: ['*.mlp.gate'], "
         "scheme: w8a8_dynamic}\n";
  const Recipe r = load_recipe(dir.path() / "r.yaml");
  std::ofstream(dir.path() / "mine.json") << "[]";
  std::ofstream(data.path() / "mine.json") << "[]";
  std::ofstream(data.path() / "shipped.json") << "[]";
  EXPECT_EQ(resolve_dataset(r, "mine.json", "data.calib_dataset", data.path()), dir.path() / "mine.json");
  EXPECT_EQ(resolve_dataset(r, "shipped.json", "data.calib_dataset", data.path()), data.path() / "shipped.json");
  const std::filesystem::path abs = data.path() / "mine.json";
  EXPECT_EQ(resolve_dataset(r, abs.string(), "data.calib_dataset", dir.path()), abs);
  try {
    resolve_dataset(r, "missing.json", "data.anti_dataset", data.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.file(), (dir.path() / "r.yaml").string());
    EXPECT_EQ(e.field(), "data.anti_dataset");
    EXPECT_NE(e.detail().find("missing.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_dataset(r, "/nonexistent/x.json", "data.calib_dataset", data.path()), Error);
}

TEST(LoadRecipe, DefaultsAndRotate) {
  TempDir dir("recipe_defaults");
  std::ofstream(dir.path() / "my-recipe.yaml")
      << "apiversion: modelslim_v0\nprocess:\n  - rotate: {method: hadamard}\n"
         "  - smooth: {method: m4, subgraphs: [ov, norm-linear], alpha: 0.5}\n"
         "  - quantize:\n      - include: ['*.mlp.*']\n        exclude: ['*.mlp.gate']\n        scheme: w8a8\n";
  const Recipe r = load_recipe(dir.path() / "my-recipe.yaml");
  EXPECT_EQ(r.name, "my-recipe");
  EXPECT_NE(r.find_step("rotate"), nullptr);
  ASSERT_TRUE(r.has_smoothing());
  EXPECT_EQ(smooth(r)["alpha"], 0.5);
  EXPECT_FALSE(smooth(r).contains("beta"));
  EXPECT_TRUE(r.quant_type.empty());
  EXPECT_EQ(r.save_format, SaveFormat::kAscendV1);
  ASSERT_EQ(groups(r).size(), 1u);
  EXPECT_EQ(groups(r)[0].method->name(), "minmax");
  EXPECT_EQ(groups(r)[0].scheme, QuantScheme::kW8A8);
  EXPECT_EQ(r.step_names(), (Names{"rotate", "m4", "quantize", "static_calibration"}));
  EXPECT_EQ(r.group_for(attn(0, "q_proj")), nullptr);  // unclaimed: stays float
}

TEST(LoadRecipe, MissingFileIsNotFound) {
  try {
    load_recipe(source_dir() / "configs" / "no-such.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace moeslim::recipe
