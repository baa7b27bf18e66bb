#include "formats/msmodelslim/layouts.h"

#include <fmt/core.h>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/inspect.h"
#include "formats/msmodelslim/reader.h"
#include "formats/msmodelslim/v0_writer.h"
#include "formats/msmodelslim/v1_writer.h"
#include "model/module_id.h"
#include "model/layer_loader.h"

namespace moeslim::formats::msmodelslim {
namespace {

class LayoutFormat final : public OutputFormat {
 public:
  explicit LayoutFormat(Layout layout) : rules_(layout_rules(layout)) {}

  std::string_view name() const override { return rules_.name; }

  void check(const model::ModelConfig& config, const LinearPlanOf& plan_of) const override {
    for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
      for (const model::ModuleId& id : model::layer_linears(config, l)) {
        const std::string module = model::hf_module_name(id);
        linear_rule(module, plan_of(module));
      }
    }
  }

  std::unique_ptr<FormatWriter> open_writer(const std::filesystem::path& dir, DType float_dtype) const override {
    if (rules_.layout == Layout::kAscendV1V1) return std::make_unique<V1Writer>(dir, float_dtype);
    return std::make_unique<V0Writer>(dir, rules_.layout, float_dtype);
  }

  std::unique_ptr<model::LayerSource> open_reader(const std::filesystem::path& dir, model::FloatPrecision precision,
                                                  std::int64_t layer_count) const override {
    return std::make_unique<QuantizedLayerSource>(dir, rules_.layout, precision, layer_count);
  }

  InspectReport inspect(const std::filesystem::path& dir) const override {
    return inspect_output_dir(dir, rules_.layout);
  }

  bool holds(const std::filesystem::path& dir) const override { return detect_layout(dir) == rules_.layout; }

  // Every tensor the writer will add, sized by the table: per layer its linears (by plan) and norms; then the
  // embedding, the final norm and lm_head (written even when tied to the embedding).
  // Both current layouts load in MindIE and vLLM-Ascend; the older one only in MindIE up to 2.1.RC1.
  std::vector<std::string> runtimes(const LinearPlanOf& /*plan_of*/) const override {
    if (rules_.layout == Layout::kMindIE) return {"MindIE <= 2.1.RC1"};
    return {"MindIE", "vLLM-Ascend"};
  }

  std::uint64_t estimate_bytes(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                               DType float_dtype) const override {
    std::uint64_t bytes = 0;
    const auto norm_bytes = [&](std::int64_t width) {
      for (const TensorRule& t : rules_.norm) bytes += tensor_bytes(t, {width}, float_dtype);
    };
    for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
      std::map<std::string, Shape> weight_shapes;
      for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) weight_shapes[t.name] = t.shape;
      for (const model::ModuleId& id : model::layer_linears(config, l)) {
        const std::string module = model::hf_module_name(id);
        const LinearPlan plan = plan_of(module);
        const Shape& w = weight_shapes.at(tensor_name(module, "weight"));
        ModuleDims dims{w[0], w[1], 0};
        if (plan.scheme == quant::QuantScheme::kW4A8Dynamic) dims.scale_bias_columns = scale_bias_columns(module).value_or(0);
        for (const TensorRule& t : linear_rule(module, plan).tensors) {
          if (t.optional && !plan.has_bias) continue;
          bytes += tensor_bytes(t, dims, float_dtype);
        }
      }
      for (const model::ModuleId& id : model::layer_norms(l)) {
        const std::string norm = model::hf_module_name(id);
        const auto it = weight_shapes.find(tensor_name(norm, "weight"));
        if (it != weight_shapes.end()) norm_bytes(it->second[0]);
      }
    }
    const auto embedding = static_cast<std::uint64_t>(config.vocab_size * config.hidden_size);
    norm_bytes(config.hidden_size);
    return bytes + 2 * embedding * dtype_size(float_dtype);
  }

 private:
  const SchemeRule& linear_rule(const std::string& module, const LinearPlan& plan) const {
    const SchemeRule* rule = rules_.scheme(plan.scheme);
    if (rule == nullptr) {
      throw Error(ErrorCode::kUnsupported,
                  fmt::format("the {} layout cannot hold {} linears{}", rules_.name,
                              quant::quant_scheme_name(plan.scheme),
                              plan.scheme == quant::QuantScheme::kW4A16
                                  ? " (msModelSlim's formats have no weight-only int4): add `save: {format: "
                                    "compressed-tensors}` to the recipe"
                                  : ""),
                  {}, module);
    }
    return *rule;
  }

  const LayoutRules& rules_;
};

}  // namespace

std::unique_ptr<OutputFormat> make_format(Layout layout) { return std::make_unique<LayoutFormat>(layout); }

}  // namespace moeslim::formats::msmodelslim
