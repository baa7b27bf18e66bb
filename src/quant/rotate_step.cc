// The rotate step (`--rot`, docs/msmodelslim-algorithms.md §5): a change of basis of the float model, so it
// runs before the float pass and everything after it (statistics, smoothing, the written float tensors) sees
// the rotated weights; each tensor is rotated once, as it streams by. The arithmetic is rotation.h's.
#include <memory>

#include "quant/rotation.h"
#include "quant/step_registry.h"

namespace moeslim::quant {
namespace {

class RotateStep final : public LayerStep {
 public:
  std::string name() const override { return "rotate"; }
  nlohmann::ordered_json settings() const override { return {{"method", "hadamard"}, {"seed", 42}}; }
  std::string phase() const override { return "rotation"; }

  void edit_embedding(const model::ModelConfig& config, Tensor& embedding) const override {
    embedding = rotate_embedding(embedding, Rotation::for_config(config));
  }
  void edit_head(const model::ModelConfig& config, Tensor& final_norm, Tensor& lm_head) const override {
    lm_head = fold_and_rotate_lm_head(lm_head, final_norm, Rotation::for_config(config));
    final_norm = unit_norm_weight(final_norm);
  }
  void before_float_pass(LayerContext& c) const override {
    // With the layer's experts in one group the whole layer is rotated now, once. With smaller groups the
    // experts are rotated as each is read (LayerContext::expert_basis_changes), so that a layer's rotated
    // experts never exist at once (15 GB at Qwen3-Coder-480B-A35B's shapes); each read rotates again: the
    // float pass (twice with an anti set) and quantization, +41 % time at Qwen3-30B-A3B shapes (README).
    // Both give the same bits (Rotation.ExpertsRotatedOneAtATimeEqualTheWholeLayersRotation).
    if (c.settings.experts_in_one_group(c.config)) {
      rotate_layer(c.config, c.layer, c.tensors, Rotation::for_config(c.config));
      return;
    }
    auto rotation = std::make_shared<const Rotation>(Rotation::for_config(c.config));
    const Tensor post_norm = c.weight({c.layer, model::ModuleRole::kPostAttentionNorm});
    rotate_layer_except_experts(c.config, c.layer, c.tensors, *rotation);
    if (!c.config.is_moe_layer(c.layer)) return;
    c.expert_basis_changes.push_back([rotation, post_norm](const model::ModuleId& module, const Tensor& w) {
      return rotate_expert_weight(module, w, post_norm, *rotation);
    });
  }
};

}  // namespace

StepList parse_rotate_step(const StepInput& in) {
  const io::yaml::MapReader m(in.src, in.node, in.path, {"method"});
  if (m.has("method")) in.src.as_choice(m.get("method"), m.path("method"), {"hadamard"});
  return {std::make_shared<RotateStep>()};
}

std::shared_ptr<const LayerStep> default_rotate_step() { return std::make_shared<RotateStep>(); }

}  // namespace moeslim::quant
