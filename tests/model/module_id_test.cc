// Module identities and the one place their Hugging Face names are made.
#include <gtest/gtest.h>

#include <set>

#include "model/config.h"
#include "model/module_id.h"

namespace moeslim::model {
namespace {

TEST(ModuleId, HuggingFaceNames) {
  EXPECT_EQ(hf_module_name({3, ModuleRole::kQProj}), "model.layers.3.self_attn.q_proj");
  EXPECT_EQ(hf_module_name({3, ModuleRole::kKNorm}), "model.layers.3.self_attn.k_norm");
  EXPECT_EQ(hf_module_name({0, ModuleRole::kRouter}), "model.layers.0.mlp.gate");
  EXPECT_EQ(hf_module_name({2, ModuleRole::kPostAttentionNorm}), "model.layers.2.post_attention_layernorm");
  EXPECT_EQ(hf_module_name(ModuleId::expert_proj(47, ModuleRole::kUpProj, 127)),
            "model.layers.47.mlp.experts.127.up_proj");
  EXPECT_EQ(hf_module_name({5, ModuleRole::kDownProj}), "model.layers.5.mlp.down_proj");  // dense MLP
  EXPECT_EQ(hf_weight_name({1, ModuleRole::kInputNorm}), "model.layers.1.input_layernorm.weight");
  EXPECT_EQ(hf_bias_name({1, ModuleRole::kVProj}), "model.layers.1.self_attn.v_proj.bias");
  EXPECT_EQ(hf_weight_name(ModuleId::final_norm()), "model.norm.weight");
  EXPECT_TRUE(ModuleId::final_norm().is_norm());
}

TEST(ModuleId, ParseIsTheInverseAndRejectsTheRest) {
  ModelConfig c;
  c.num_hidden_layers = 2;
  c.num_experts = 3;
  c.mlp_only_layers = {1};
  c.decoder_sparse_step = 1;
  std::set<ModuleId> seen;
  for (std::int64_t l = 0; l < 2; ++l) {
    std::vector<ModuleId> all = layer_linears(c, l);
    const std::vector<ModuleId> norms = layer_norms(l);
    all.insert(all.end(), norms.begin(), norms.end());
    for (const ModuleId& id : all) {
      EXPECT_EQ(parse_hf_module_name(hf_module_name(id)), id) << hf_module_name(id);
      EXPECT_TRUE(seen.insert(id).second) << "listed twice: " << hf_module_name(id);
    }
  }
  EXPECT_EQ(parse_hf_module_name("model.norm"), ModuleId::final_norm());
  for (const char* bad : {"lm_head", "model.norm.weight", "model.layers.x.self_attn.q_proj", "model.layers.1.mlp.gate_x",
                          "model.layers.1.mlp.experts.2.gate", "model.layers.-1.input_layernorm",
                          "model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.experts.q.up_proj"}) {
    EXPECT_FALSE(parse_hf_module_name(bad).has_value()) << bad;
  }
}

TEST(ModuleId, LayerLinearsInModuleOrder) {
  ModelConfig c;
  c.num_hidden_layers = 1;
  c.num_experts = 2;
  std::vector<std::string> names;
  for (const ModuleId& id : layer_linears(c, 0)) names.push_back(hf_module_name(id));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                       "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate",
                       "model.layers.0.mlp.experts.0.gate_proj", "model.layers.0.mlp.experts.0.up_proj",
                       "model.layers.0.mlp.experts.0.down_proj", "model.layers.0.mlp.experts.1.gate_proj",
                       "model.layers.0.mlp.experts.1.up_proj", "model.layers.0.mlp.experts.1.down_proj"}));
}

}  // namespace
}  // namespace moeslim::model
