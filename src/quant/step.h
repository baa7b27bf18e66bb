// A quantization algorithm as one step of a recipe. The layer quantizer (pipeline/layer_quantizer.h) runs every
// decoder layer the same way, whatever the recipe:
//   1. before_float_pass    each step may change the float layer's basis (rotation: the same function)
//   2. float pass           the float layer over the calibration activations, observing the union of what the
//                           steps request (channel statistics, input rows) and the routing
//   3. apply                each step in recipe order: smoothing edits the layer's tensors (and plans what it
//                           will do to the experts), weight quantization fills the layer's QuantizedLinears
//                           except a MoE layer's experts
//   4. quantized pass       the quantized layer (the runtime's integer arithmetic) over the same activations;
//                           steps that calibrate (static activation ranges) hook into it. A MoE layer's experts
//                           go a group at a time (model/grouped_layer_pass.h): apply_to_experts of each step
//                           quantizes the group, the group runs over every batch, its calibration finishes,
//                           and its linears are handed to the writer before the next group is made, so a
//                           layer's experts never all exist as codes (nor as mapped float weights: the float
//                           pass goes group by group as well)
//   5. propagation          the next layer gets the float or the quantized pass's outputs (the recipe's
//                           apiversion default, StepDefaults::propagation)
// A step is immutable once parsed (a recipe can run many times); what it learns about one layer lives in the
// LayerContext, and a calibration pass's state in the CalibrationPass object it returns.
//
// To add a step: one file in quant/ with a class deriving from LayerStep and its parser, plus one line in
// step_registry.cc (docs/design.md, "Adding a step").
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/grouped_layer_pass.h"
#include "model/layer_loader.h"
#include "model/linear.h"
#include "model/module_id.h"
#include "model/observer.h"
#include "quant/observers.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

// Which activations the next layer is calibrated on.
enum class Propagation {
  kQuantized,  // the quantized layer's outputs (msModelSlim's v0 W8A8 script: sequential fake-quant propagation)
  kFloat,      // the float layer's outputs (its v1 one-click path)
};

// What a recipe's apiversion fills in: defaults, never a choice of code path. Steps read them while parsing
// (e.g. which minmax formulas `weight: minmax` means) and the layer quantizer while running.
struct StepDefaults {
  std::string apiversion;  // "modelslim_v0" | "modelslim_v1", for messages
  bool v1 = false;         // the v1 formulas (§6.4) for `weight: minmax`; else the v0 ones (§4.3)
  Propagation propagation = Propagation::kQuantized;
  // Smoothing statistics come from a separate anti-outlier prompt set carried through the float layers (v0),
  // rather than from the calibration set's float pass (v1).
  bool statistics_on_anti_set = true;
};

// Settings of one run that steps need (the command line, the model and the recipe's data block decide them).
struct RunSettings {
  DType float_dtype = DType::kBF16;    // the model's float dtype: what smoothed weights are rounded to
  bool include_padding = false;        // pads enter the statistics (msModelSlim's padded batches)
  std::int64_t search_rows = 0;        // flex_smooth's α/β search: at most this many rows (0 = all)
  // Experts per group in the layer quantizer's passes (0: all of a layer's experts in one group). The output
  // does not depend on it; the peak memory does, and so may a step's choice of when to do its work.
  std::int64_t experts_per_group = 0;
  // The float passes' GEMM precision (the float layer's pass, and a step's own float runs: GPTQ's Hessians).
  model::FloatPrecision float_precision = model::FloatPrecision::kF32;
  // An expert that fewer calibration tokens reached is starved: the steps fit nothing to its few rows (no
  // up-down smoothing, GPTQ's data-free fallback). The recipe's data.min_expert_tokens; 1: only experts with none.
  std::int64_t min_expert_tokens = 1;
  bool experts_in_one_group(const model::ModelConfig& config) const {
    return experts_per_group <= 0 || experts_per_group >= config.num_experts;
  }
};

// What steps want to see on the float pass.
struct ObservationRequest {
  std::set<model::ModuleId> channel_stats;  // per input channel: max, min, max |x|
  std::set<model::ModuleId> input_rows;     // every real input row, in order
  bool empty() const { return channel_stats.empty() && input_rows.empty(); }
};

// What the float pass saw.
struct LayerObservations {
  std::map<model::ModuleId, ChannelStatsObserver> channel_stats;
  std::map<model::ModuleId, Tensor> input_rows;  // F32 [rows, in]
  std::vector<std::int64_t> expert_tokens;       // real tokens routed to each expert (MoE layers)

  // kInternal naming the module when it was not requested.
  const ChannelStatsObserver& stats(const model::ModuleId& module) const;
  const Tensor& rows(const model::ModuleId& module) const;
};

// One smoothing subgraph's choice, for the report.
struct SmoothingChoice {
  std::string subgraph;  // "norm-linear", "ov", "moe-input", "up-down"
  double alpha = 0;
  double beta = 0;
  bool searched = false;           // α/β came from the search (flex_smooth without a fixed alpha)
  double search_error = 0;         // the search's best error, when searched
  // When searched: the grid points evaluated to their exact error, in search order (α, β, error each).
  std::vector<std::array<double, 3>> search_curve{};
  std::int64_t experts_smoothed = -1;  // up-down: experts that saw tokens and were smoothed; −1 = n/a
};

// A linear that a data-fitted weight method (GPTQ) quantized with its data-free fallback, and why.
struct WeightFallback {
  std::string module;  // Hugging Face module name
  std::string reason;
};

// A change to a linear's weight that a step decides on the float pass but applies only when that linear is
// quantized (expert smoothing: a Qwen3-235B layer's experts never all exist in float32 at once). Returns the
// edited weight, or `weight` itself when it does not apply to `module`.
using DeferredWeightEdit = std::function<Tensor(const model::ModuleId& module, const Tensor& weight)>;

// What a linear's input channel j reads now, from the float pass's x_j: (x_j − shift[j]) / divisor[j].
struct InputChange {
  std::vector<float> shift;    // in the float pass's units; empty: no shift
  std::vector<float> divisor;  // empty: 1
};

// One decoder layer as the steps see it.
struct LayerContext {
  LayerContext(const model::ModelConfig& config, std::int64_t layer, model::LayerTensors tensors,
               const RunSettings& settings)
      : config(config), layer(layer), tensors(std::move(tensors)), settings(settings) {}

  const model::ModelConfig& config;
  std::int64_t layer;
  model::LayerTensors tensors;  // the checkpoint's tensors (views), or the copies steps made and edited
  RunSettings settings;
  const LayerObservations* observations = nullptr;  // set after the float pass
  // During apply_to_experts: the rows the group's experts see in the quantized pass (each expert's routed
  // rows of every batch), for a step that fits its weights to them.
  const model::ExpertGroupInputs* expert_inputs = nullptr;

  std::map<model::ModuleId, QuantizedLinear> linears;  // filled by the weight-quantization step
  std::vector<DeferredWeightEdit> deferred_edits;      // applied in order by weight_to_quantize
  // A change of basis of the experts' weights that a step decides before the float pass and that reaches each
  // expert weight only as it is read (rotation), so that a layer's experts never all exist in the new basis.
  // Applied in order by read_weight; weight() refuses an expert's weight while one is set.
  std::vector<DeferredWeightEdit> expert_basis_changes;
  std::vector<SmoothingChoice> smoothing;              // what the smoothing steps chose
  // Per non-expert linear: how its input now relates to what the float pass saw of it (smoothing moves a scale,
  // and m4 a shift, from a linear's input into its weights and biases), so that the float pass's rows and their
  // Hessian (GPTQ) can be carried to the input the linear now reads. Absent: unchanged.
  std::map<model::ModuleId, InputChange> input_changes;
  std::vector<WeightFallback> weight_fallbacks;        // in the order the linears were quantized
  bool norm_bias = false;                              // every norm is written with a bias (m4's NormBias)
  // When set: hands the mapped pages of a checkpoint tensor (by name) back to the OS. The weight-quantization
  // step calls it for each weight it has quantized, which nothing reads again, so a layer's experts are not
  // held as mapped bf16 and as codes at once.
  std::function<void(const std::string& name)> release_mapped;

  Tensor& weight(const model::ModuleId& module);
  const Tensor& weight(const model::ModuleId& module) const;
  // The module's weight in the layer's current basis: weight(), with expert_basis_changes applied to an
  // expert's. What every reader of an expert weight uses.
  Tensor read_weight(const model::ModuleId& module) const;
  Tensor bias(const model::ModuleId& module) const;  // empty when the module has none
  // read_weight with every deferred edit applied.
  Tensor weight_to_quantize(const model::ModuleId& module) const;
  // Replaces the module's weight by a new F32 copy (exact) that a step may edit in place; call it once per module.
  Tensor& editable_weight(const model::ModuleId& module);
};

// Records that `module`'s input channel j is now divided by s[j] (on top of any earlier change).
void divide_input(LayerContext& context, const model::ModuleId& module, const std::vector<float>& s);
// Records that `module`'s input channel j now has t[j] subtracted, in the units it has now (after any earlier
// division: t[j]·divisor[j] in the float pass's).
void shift_input(LayerContext& context, const model::ModuleId& module, const std::vector<float>& t);

// A step's hook into the quantized pass: it may supply the runtime linear of the modules it calibrates and
// watches their inputs; once they have seen every batch it writes what it calibrated back into the context.
class CalibrationPass : public model::ForwardObserver {
 public:
  // The linear `module` runs as during the pass, or nullptr for the default runtime linear of its scheme.
  // Called as the linear is built: the attention's and the dense MLP's before the pass, an expert's when its
  // group is loaded.
  virtual std::unique_ptr<model::Linear> linear_for(const model::ModuleId& module, const QuantizedLinear& q) = 0;
  // `modules` have seen every batch and their linears are about to go: write their calibration into
  // context.linears and forget them. Called for the attention after its half of the pass, for each expert group
  // after it ran, and for the rest at the end.
  virtual void finish(LayerContext& context, const std::vector<model::ModuleId>& modules) = 0;
};

class LayerStep {
 public:
  virtual ~LayerStep() = default;

  // The recipe name (registry key), e.g. "m4", "flex_smooth", "rotate", "quantize".
  virtual std::string name() const = 0;
  // Its parameters as the run will use them (defaults filled in), for the report and `moeslim recipes`.
  virtual nlohmann::ordered_json settings() const = 0;
  // The phase its apply() is timed under ("smoothing", "weight quantization", ...).
  virtual std::string phase() const = 0;

  // Whether it reads float-pass statistics (so the run must prepare the set they are taken on).
  virtual bool observes() const { return false; }
  // Whether every norm is written with a bias (m4's NormBias gives each one).
  virtual bool gives_norms_a_bias() const { return false; }

  // Model-wide tensors outside the decoder layers (rotation changes the basis of the residual stream):
  // the embedding as the layers will see it, and the final norm and lm_head as written.
  virtual void edit_embedding(const model::ModelConfig& config, Tensor& embedding) const {}
  virtual void edit_head(const model::ModelConfig& config, Tensor& final_norm, Tensor& lm_head) const {}

  // Per layer, in the order of the file's top comment.
  virtual void before_float_pass(LayerContext& context) const {}
  virtual void request(const LayerContext& context, ObservationRequest& request) const {}
  virtual void apply(LayerContext& context) const {}
  // The step's part for one group of a MoE layer's experts, in step order, as the quantized pass reaches the
  // group (after every step's apply): weight quantization fills the group's QuantizedLinears here.
  virtual void apply_to_experts(LayerContext& context, model::ExpertRange group) const {}
  // nullptr unless the step must see the quantized pass.
  virtual std::unique_ptr<CalibrationPass> calibration(const LayerContext& context) const { return nullptr; }
};

using StepList = std::vector<std::shared_ptr<const LayerStep>>;

}  // namespace moeslim::quant
