#include "model/config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "common/test_paths.h"

namespace moeslim::model {
namespace {

using nlohmann::json;

json minimal() {
  return json{{"model_type", "qwen3_moe"}, {"vocab_size", 100}, {"hidden_size", 64}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2},
              {"moe_intermediate_size", 16}};
}

Error parse_error(const json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "config was accepted: " << j.dump();
  return Error(ErrorCode::kInternal, "");
}

TEST(ModelConfig, BundledTinyModel) {
  const ModelConfig c = ModelConfig::load(testing::bundled_model_dir());
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.num_hidden_layers, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.q_width(), 512);
  EXPECT_EQ(c.num_experts, 16);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(expected_tensors(c).size(), 1u + 4u * (8u + 1u + 48u) + 2u);
}

TEST(ModelConfig, HuggingFaceDefaults) {
  const ModelConfig c = ModelConfig::from_json(minimal(), "cfg.json");
  EXPECT_EQ(c.head_dim, 16);  // hidden / heads when head_dim is absent
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.mlp_only_layers.empty());
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, DenseLayersFromMlpOnlyAndSparseStep) {
  json j = minimal();
  j["num_hidden_layers"] = 4;
  j["mlp_only_layers"] = {0};
  j["decoder_sparse_step"] = 2;
  j["intermediate_size"] = 32;
  const ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_FALSE(c.is_moe_layer(0));  // listed
  EXPECT_TRUE(c.is_moe_layer(1));   // (1+1) % 2 == 0
  EXPECT_FALSE(c.is_moe_layer(2));  // off the step
  EXPECT_TRUE(c.is_moe_layer(3));
  const auto layer0 = expected_layer_tensors(c, 0);
  EXPECT_EQ(layer0.back().name, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(layer0.back().shape, (Shape{64, 32}));
}

TEST(ModelConfig, V5Aliases) {
  json j = minimal();
  j.erase("num_experts");
  j["num_local_experts"] = 8;
  j["rope_parameters"] = {{"rope_theta", 5e6}, {"rope_type", "default"}};
  const ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e6);
}

TEST(ModelConfig, RejectsWhatIsNotImplemented) {
  struct Case {
    const char* key;
    json value;
    ErrorCode code;
  };
  const Case cases[] = {
      {"rope_scaling", json{{"rope_type", "yarn"}, {"factor", 4.0}}, ErrorCode::kUnsupported},
      {"use_sliding_window", true, ErrorCode::kUnsupported},
      {"attention_bias", true, ErrorCode::kUnsupported},
      {"hidden_act", "gelu", ErrorCode::kUnsupported},
      {"model_type", "llama", ErrorCode::kUnsupported},
      {"quantization_config", json{{"quant_method", "fp8"}}, ErrorCode::kUnsupported},
      {"num_experts_per_tok", 5, ErrorCode::kFormat},
      {"num_hidden_layers", 0, ErrorCode::kFormat},
      {"num_key_value_heads", 3, ErrorCode::kFormat},
      {"hidden_size", "64", ErrorCode::kFormat},
      {"norm_topk_prob", 1, ErrorCode::kFormat},
      {"mlp_only_layers", json{"a"}, ErrorCode::kFormat},
  };
  for (const Case& c : cases) {
    json j = minimal();
    j[c.key] = c.value;
    const Error e = parse_error(j);
    EXPECT_EQ(e.code(), c.code) << c.key << ": " << e.what();
    EXPECT_EQ(e.file(), "cfg.json");
    EXPECT_EQ(e.field(), c.key) << e.what();
  }
}

TEST(ModelConfig, MissingRequiredKeyAndHeadsNotDividingHidden) {
  json j = minimal();
  j.erase("hidden_size");
  Error e = parse_error(j);
  EXPECT_EQ(e.field(), "hidden_size");
  EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  j = minimal();
  j["num_attention_heads"] = 6;
  j["num_key_value_heads"] = 2;
  e = parse_error(j);
  EXPECT_EQ(e.field(), "num_attention_heads");
  j["head_dim"] = 16;  // an explicit head_dim makes it legal (Qwen3: 32 heads x 128 != 2048)
  EXPECT_NO_THROW(ModelConfig::from_json(j, "cfg.json"));
}

TEST(ModelConfig, LayerCount) {
  ModelConfig c = ModelConfig::from_json(minimal(), "cfg.json");
  EXPECT_THROW(c.limit_layers(3), Error);
  EXPECT_THROW(c.limit_layers(0), Error);
  c.limit_layers(1);
  EXPECT_EQ(c.num_hidden_layers, 1);
  EXPECT_EQ(expected_tensors(c).back().name, "lm_head.weight");
}

}  // namespace
}  // namespace moeslim::model
