// compressed-tensors' quantization_config (docs/compressed-tensors.md §1) from the plan of each linear: the
// groups, targets and ignore list vLLM's and vLLM-Ascend's scheme selection read, and the layouts it refuses.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "common/test_paths.h"
#include "core/error.h"
#include "formats/compressed_tensors/quantization_config.h"
#include "model/config.h"

namespace moeslim::formats::compressed_tensors {
namespace {

using quant::QuantScheme;

model::ModelConfig tiny() { return model::ModelConfig::load(moeslim::testing::bundled_model_dir()); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A plan by module name: routers float, attention and experts as given.
LinearPlanOf plan(QuantScheme attention, QuantScheme experts) {
  return [=](const std::string& module) {
    LinearPlan p;
    if (contains(module, "self_attn.")) p.scheme = attention;
    if (contains(module, "mlp.experts.")) p.scheme = experts;
    return p;
  };
}

nlohmann::ordered_json ignore_of(const model::ModelConfig& c, bool experts_too) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    out.push_back("model.layers." + std::to_string(l) + ".mlp.gate");  // in the layer's linear order
    if (experts_too) {
      for (std::int64_t e = 0; e < c.num_experts; ++e) {
        for (const char* p : {"gate_proj", "up_proj", "down_proj"}) {
          out.push_back("model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + "." + p);
        }
      }
    }
  }
  out.push_back("lm_head");
  return out;
}

// The W4A8 layout vLLM-Ascend loads: W4A8 experts (int4 codes one per I8) and W8A8 attention, both with
// dynamic per-token int8 inputs, in one format, two groups.
TEST(CtQuantizationConfig, W4A8ExpertsAndW8A8AttentionAreTwoGroupsOfOneFormat) {
  const model::ModelConfig c = tiny();
  const nlohmann::ordered_json q =
      quantization_config(c, plan(QuantScheme::kW8A8Dynamic, QuantScheme::kW4A8Dynamic), "0.18.0");
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], "int-quantized");
  EXPECT_EQ(q["quantization_status"], "compressed");
  EXPECT_EQ(q["version"], "0.18.0");
  EXPECT_EQ(q["ignore"], ignore_of(c, false));
  ASSERT_EQ(q["config_groups"].size(), 2u);
  const auto& experts = q["config_groups"]["group_0"];
  const auto& attention = q["config_groups"]["group_1"];
  EXPECT_FALSE(experts.contains("format")) << "one format: no per-group key";
  EXPECT_EQ(experts["targets"], nlohmann::ordered_json({"Linear"}));
  EXPECT_EQ(experts["weights"]["num_bits"], 4);
  EXPECT_EQ(experts["weights"]["strategy"], "channel");
  EXPECT_EQ(experts["weights"]["group_size"], nullptr);
  EXPECT_EQ(experts["weights"]["symmetric"], true);
  EXPECT_EQ(experts["weights"]["dynamic"], false);
  EXPECT_FALSE(experts["weights"].contains("scale_dtype")) << "compressed-tensors before 0.13 refuses it";
  EXPECT_FALSE(experts["weights"].contains("zp_dtype"));
  EXPECT_EQ(experts["input_activations"]["strategy"], "token");
  EXPECT_EQ(experts["input_activations"]["dynamic"], true);
  EXPECT_EQ(experts["input_activations"]["num_bits"], 8);
  EXPECT_EQ(attention["weights"]["num_bits"], 8);

  // The attention target, as Python's re.match reads it, takes q/k/v/o_proj and vLLM's fused qkv_proj only.
  ASSERT_EQ(attention["targets"].size(), 1u);
  const std::string target = attention["targets"][0];
  ASSERT_EQ(target.rfind("re:", 0), 0u);
  const std::regex re(target.substr(3));
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj"}) {
    EXPECT_TRUE(std::regex_match(std::string("model.layers.3.self_attn.") + m, re)) << m;
  }
  for (const char* m : {"model.layers.3.mlp.experts.0.gate_proj", "model.layers.3.mlp.gate",
                        "model.layers.3.self_attn.q_norm", "lm_head"}) {
    EXPECT_FALSE(std::regex_match(std::string(m), re)) << m;
  }
}

TEST(CtQuantizationConfig, OneSchemeIsOneGroupTargetingLinear) {
  const nlohmann::ordered_json q =
      quantization_config(tiny(), plan(QuantScheme::kW8A8Dynamic, QuantScheme::kW8A8Dynamic), "0.18.0");
  ASSERT_EQ(q["config_groups"].size(), 1u);
  EXPECT_EQ(q["config_groups"]["group_0"]["targets"], nlohmann::ordered_json({"Linear"}));
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["num_bits"], 8);
}

TEST(CtQuantizationConfig, FloatExpertsAreIgnoredByName) {
  const model::ModelConfig c = tiny();
  const nlohmann::ordered_json q =
      quantization_config(c, plan(QuantScheme::kW8A8Dynamic, QuantScheme::kFloat), "0.18.0");
  ASSERT_EQ(q["config_groups"].size(), 1u);
  EXPECT_EQ(q["config_groups"]["group_0"]["targets"], nlohmann::ordered_json({"Linear"}));
  EXPECT_TRUE(q["ignore"] == ignore_of(c, true)) << q["ignore"].size() << " entries";
}

Error error_of(const LinearPlanOf& p) {
  try {
    quantization_config(tiny(), p, "0.18.0");
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "accepted";
  return Error(ErrorCode::kInternal, "");
}

TEST(CtQuantizationConfig, RefusesWhatItCannotHoldNamingTheModule) {
  Error e = error_of(plan(QuantScheme::kW8A8, QuantScheme::kW8A8Dynamic));
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj");
  EXPECT_TRUE(contains(e.what(), "w8a8_dynamic, w4a8_dynamic or w4a16")) << e.what();

  e = error_of([](const std::string& module) {
    LinearPlan p;
    if (contains(module, "self_attn.")) p.scheme = QuantScheme::kW8A8Dynamic;
    p.has_bias = contains(module, "k_proj");
    return p;
  });
  EXPECT_EQ(e.field(), "model.layers.0.self_attn.k_proj");
  EXPECT_TRUE(contains(e.what(), "m4")) << e.what();

  // Layer 1's attention in another scheme than layer 0's.
  e = error_of([](const std::string& module) {
    LinearPlan p;
    if (contains(module, "self_attn.")) {
      p.scheme = contains(module, "layers.1.") ? QuantScheme::kW4A8Dynamic : QuantScheme::kW8A8Dynamic;
    }
    return p;
  });
  EXPECT_EQ(e.field(), "model.layers.1.self_attn.q_proj");
  EXPECT_TRUE(contains(e.what(), "model.layers.0.self_attn.q_proj")) << e.what();

  e = error_of(plan(QuantScheme::kFloat, QuantScheme::kFloat));
  EXPECT_TRUE(contains(e.what(), "at least one quantized linear")) << e.what();
}

}  // namespace
}  // namespace moeslim::formats::compressed_tensors
