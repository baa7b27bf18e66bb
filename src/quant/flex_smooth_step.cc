// The flex_smooth step (docs/msmodelslim-algorithms.md §6.3), msModelSlim's v1 smoothing: ov (v_proj → o_proj,
// group max) before norm-linear (input_layernorm → q/k/v, which then sees v_proj as ov left it), α/β searched
// on the observed input rows unless the recipe fixes α; optionally the MoE subgraphs (expert_smoothing.h). The
// arithmetic is flex_smoothing.h's.
#include "quant/flex_search.h"
#include "quant/flex_smoothing.h"
#include "quant/smooth_keys.h"

namespace moeslim::quant {
namespace {

using model::ModuleId;
using model::ModuleRole;

class FlexSmoothStep final : public LayerStep {
 public:
  explicit FlexSmoothStep(SmoothKeys keys) : keys_(std::move(keys)) {}

  std::string name() const override { return "flex_smooth"; }
  nlohmann::ordered_json settings() const override {
    nlohmann::ordered_json j = {{"method", "flex_smooth"}, {"subgraphs", keys_.subgraphs}};
    j["alpha"] = keys_.alpha ? nlohmann::ordered_json(*keys_.alpha) : nlohmann::ordered_json("searched");
    if (keys_.alpha) j["beta"] = keys_.beta.value_or(1.0 - *keys_.alpha);
    return j;
  }
  std::string phase() const override { return "smoothing"; }
  bool observes() const override { return true; }

  void request(const LayerContext& c, ObservationRequest& r) const override {
    request_expert_smoothing(c, keys_.expert_params(), r);
    const ModuleId k_proj{c.layer, ModuleRole::kKProj}, o_proj{c.layer, ModuleRole::kOProj};
    if (keys_.has("norm-linear")) {
      r.channel_stats.insert(k_proj);
      if (!keys_.alpha) r.input_rows.insert(k_proj);
    }
    if (keys_.has("ov")) {
      r.channel_stats.insert(o_proj);
      if (!keys_.alpha) r.input_rows.insert(o_proj);
    }
  }

  void apply(LayerContext& c) const override {
    const std::int64_t l = c.layer;
    Tensor& wq = c.weight({l, ModuleRole::kQProj});
    Tensor& wk = c.weight({l, ModuleRole::kKProj});
    Tensor& wv = c.weight({l, ModuleRole::kVProj});
    Tensor& wo = c.weight({l, ModuleRole::kOProj});
    const DType dt = c.settings.float_dtype;
    if (keys_.has("ov")) {
      const SmoothingChoice ab = choose(c, "ov", {l, ModuleRole::kOProj}, {&wo});
      divide_input(c, {l, ModuleRole::kOProj},
                   flex_smooth_ov(wv, wo, c.observations->stats({l, ModuleRole::kOProj}).abs_max(),
                                  c.config.num_attention_heads, c.config.num_key_value_heads, c.config.head_dim,
                                  ab.alpha, ab.beta, dt));
    }
    if (keys_.has("norm-linear")) {
      const SmoothingChoice ab = choose(c, "norm-linear", {l, ModuleRole::kKProj}, {&wk, &wq, &wv});
      const std::vector<float> s = flex_smooth_norm_linear(
          c.weight({l, ModuleRole::kInputNorm}), {&wk, &wq, &wv}, c.observations->stats({l, ModuleRole::kKProj}).abs_max(),
          ab.alpha, ab.beta, dt);
      for (const ModuleRole r : {ModuleRole::kQProj, ModuleRole::kKProj, ModuleRole::kVProj}) divide_input(c, {l, r}, s);
    }
    apply_expert_smoothing(c, keys_.expert_params());
  }

 private:
  // The recipe's α/β, or §6.3's search over the observed rows and the subgraph's current weights; recorded.
  SmoothingChoice choose(LayerContext& c, const char* subgraph, const ModuleId& rows_of,
                         const std::vector<const Tensor*>& weights) const {
    SmoothingChoice choice{subgraph};
    if (keys_.alpha) {
      choice.alpha = *keys_.alpha;
      choice.beta = keys_.beta.value_or(1.0 - *keys_.alpha);
    } else {
      FlexSearchOptions search;
      search.max_rows = c.settings.search_rows;
      const FlexSearchResult r =
          search_flex_alpha_beta(c.observations->rows(rows_of), weights, c.settings.float_dtype, search);
      choice.alpha = r.alpha;
      choice.beta = r.beta;
      choice.searched = true;
      choice.search_error = r.error;
      for (const FlexSearchPoint& p : r.exact_points) choice.search_curve.push_back({p.alpha, p.beta, p.error});
    }
    c.smoothing.push_back(choice);
    return choice;
  }

  SmoothKeys keys_;
};

}  // namespace

StepList parse_flex_smooth_step(const StepInput& in) {
  const io::yaml::MapReader m(in.src, in.node, in.path, {"method", "subgraphs", "alpha", "beta"});
  if (!in.defaults.v1) {
    in.src.fail(m.path("method"),
                "method flex_smooth is a v1 processor (apiversion modelslim_v1); modelslim_v0 recipes use m4",
                m.get("method"));
  }
  return {std::make_shared<FlexSmoothStep>(parse_smooth_keys(in, m))};
}

}  // namespace moeslim::quant
