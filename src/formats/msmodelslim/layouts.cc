#include "formats/msmodelslim/layouts.h"

#include <fmt/core.h>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/inspect.h"
#include "formats/msmodelslim/reader.h"
#include "formats/msmodelslim/v0_writer.h"
#include "formats/msmodelslim/v1_writer.h"
#include "model/module_id.h"

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

  // Both current layouts load in MindIE and vLLM-Ascend; the older one only in MindIE up to 2.1.RC1.
  std::vector<std::string> runtimes(const LinearPlanOf& /*plan_of*/) const override {
    if (rules_.layout == Layout::kMindIE) return {"MindIE <= 2.1.RC1"};
    return {"MindIE", "vLLM-Ascend"};
  }

  // A float tensor as it is; a norm's and a linear's tensors as the table lists them.
  std::vector<io::PlannedTensor> tensors_of(const WriterCall& call, DType float_dtype) const override {
    std::vector<io::PlannedTensor> out;
    const auto add = [&](const std::vector<TensorRule>& rules, const ModuleDims& dims, bool has_bias) {
      for (const TensorRule& t : rules) {
        if (t.optional && !has_bias) continue;
        out.push_back(
            {tensor_name(call.name, t.suffix), resolve_dtype(t.dtype, float_dtype), resolve_shape(t.shape, dims)});
      }
    };
    switch (call.kind) {
      case WriterCall::Kind::kFloat:
        out.push_back({call.name, float_dtype, call.shape});
        break;
      case WriterCall::Kind::kNorm:
        add(rules_.norm, {call.shape.at(0), 0, 0}, true);
        break;
      case WriterCall::Kind::kLinear: {
        ModuleDims dims{call.shape.at(0), call.shape.at(1), 0};
        if (call.plan.scheme == quant::QuantScheme::kW4A8Dynamic) {
          dims.scale_bias_columns = scale_bias_columns(call.name).value_or(0);
        }
        add(linear_rule(call.name, call.plan).tensors, dims, call.plan.has_bias);
        break;
      }
    }
    return out;
  }

 private:
  const SchemeRule& linear_rule(const std::string& module, const LinearPlan& plan) const {
    const SchemeRule* rule = rules_.scheme(plan.scheme);
    if (rule == nullptr) {
      throw Error(
          ErrorCode::kUnsupported,
          fmt::format("the {} layout cannot hold {} linears{}", rules_.name, quant::quant_scheme_name(plan.scheme),
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
