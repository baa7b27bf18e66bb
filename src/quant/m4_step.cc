// The m4 smoothing step (docs/msmodelslim-algorithms.md §3), msModelSlim's W8A8 anti-outlier method: v_proj →
// o_proj with the GQA mean, then input_layernorm → q/k/v with a shift folded into a norm bias (NormBias, which
// every norm of the model then carries) and q/k/v biases; optionally the MoE subgraphs (expert_smoothing.h).
// The arithmetic is m4_smoothing.h's.
#include "quant/m4_smoothing.h"
#include "quant/smooth_keys.h"

namespace moeslim::quant {
namespace {

using model::ModuleId;
using model::ModuleRole;

class M4Step final : public LayerStep {
 public:
  explicit M4Step(SmoothKeys keys) : keys_(std::move(keys)) {}

  std::string name() const override { return "m4"; }
  nlohmann::ordered_json settings() const override {
    return {{"method", "m4"}, {"subgraphs", keys_.subgraphs}, {"alpha", alpha()}};
  }
  std::string phase() const override { return "smoothing"; }
  bool observes() const override { return true; }
  bool gives_norms_a_bias() const override { return true; }

  void request(const LayerContext& c, ObservationRequest& r) const override {
    request_expert_smoothing(c, keys_.expert_params(), r);
    r.channel_stats.insert({c.layer, ModuleRole::kQProj});
    r.channel_stats.insert({c.layer, ModuleRole::kOProj});
  }

  void apply(LayerContext& c) const override {
    const std::int64_t l = c.layer;
    SmoothOptions o;
    o.alpha = static_cast<float>(alpha());
    o.float_dtype = c.settings.float_dtype;
    divide_input(c, {l, ModuleRole::kOProj},
                 smooth_v_to_o(c.weight({l, ModuleRole::kVProj}), c.weight({l, ModuleRole::kOProj}),
                               c.observations->stats({l, ModuleRole::kOProj}), c.config.num_attention_heads,
                               c.config.num_key_value_heads, c.config.head_dim, o));
    const ModuleId qkv_ids[] = {{l, ModuleRole::kQProj}, {l, ModuleRole::kKProj}, {l, ModuleRole::kVProj}};
    std::vector<Tensor*> qkv;
    for (const ModuleId& id : qkv_ids) qkv.push_back(&c.weight(id));
    const ModuleId norm{l, ModuleRole::kInputNorm};
    NormLinearSmoothing s =
        smooth_norm_to_linears(c.weight(norm), qkv, c.observations->stats({l, ModuleRole::kQProj}), o);
    c.tensors[model::hf_weight_name(norm)] = s.norm_weight;
    c.tensors[model::hf_bias_name(norm)] = s.norm_bias;
    for (std::size_t i = 0; i < 3; ++i) {
      c.tensors[model::hf_bias_name(qkv_ids[i])] = s.linear_biases[i];
      shift_input(c, qkv_ids[i], s.shift);
      divide_input(c, qkv_ids[i], s.scale);
    }
    c.norm_bias = true;
    apply_expert_smoothing(c, keys_.expert_params());
  }

 private:
  double alpha() const { return keys_.alpha.value_or(0.5); }
  SmoothKeys keys_;
};

}  // namespace

StepList parse_m4_step(const StepInput& in) {
  const io::yaml::MapReader m(in.src, in.node, in.path, {"method", "subgraphs", "alpha", "beta"});
  if (in.defaults.v1) {
    in.src.fail(m.path("method"),
                "method m4 is the v0 anti-outlier (apiversion modelslim_v0); modelslim_v1 recipes use flex_smooth",
                m.get("method"));
  }
  SmoothKeys keys = parse_smooth_keys(in, m);
  if (!(keys.has("norm-linear") && keys.has("ov"))) {
    in.src.fail(keys.subgraphs_path,
                "m4 always smooths norm-linear and ov together (docs/msmodelslim-algorithms.md §3.1): the list must "
                "contain both, optionally with moe-input and up-down",
                keys.subgraphs_node);
  }
  if (keys.beta) in.src.fail(m.path("beta"), "beta is a flex_smooth parameter; m4 takes only alpha", m.get("beta"));
  return {std::make_shared<M4Step>(std::move(keys))};
}

// The m4 step that `--anti_method m4` adds to a recipe without one: norm-linear and ov at α = 0.5.
std::shared_ptr<const LayerStep> default_m4_step() {
  SmoothKeys keys;
  keys.subgraphs = {"norm-linear", "ov"};
  return std::make_shared<M4Step>(std::move(keys));
}

}  // namespace moeslim::quant
