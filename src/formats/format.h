// An output format: everything moeslim knows about one on-disk layout of a quantized model, behind one
// interface, so that `quant` (writing), `eval` (reading), `inspect` (checking) and the up-front size estimate
// all ask the same object. The registry (registry.h) names the formats and tells which one a directory holds.
// A new layout is a new OutputFormat and a registry entry; nothing outside src/formats/ changes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "formats/inspect_report.h"
#include "io/safetensors_writer.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/linear.h"
#include "quant/quant_types.h"

namespace moeslim::formats {

// What finish() wrote.
struct WrittenOutput {
  io::ShardedWriteSummary shards;
  std::filesystem::path description_path;
  std::vector<std::string> side_files;  // copied from the model directory (config.json is rewritten, not copied)
};

// Streams one quantized model into a directory: the add_*() calls in Hugging Face module order
// (model.named_modules()), each writing its tensors at once so that no more than one module is ever held,
// then finish() once. Errors name the output directory and the tensor.
class FormatWriter {
 public:
  virtual ~FormatWriter() = default;

  // A float parameter by its full tensor name ("model.embed_tokens.weight", "lm_head.weight"), converted to the
  // model's float dtype (a tensor already in it is written without a copy).
  virtual void add_float(const std::string& tensor_name, const Tensor& tensor) = 0;
  virtual void add_norm(const quant::NormTensors& norm) = 0;
  virtual void add_linear(const quant::QuantizedLinear& linear) = 0;

  // Before the first add: the tensors the adds will write, in order (planned_output()). While the adds match
  // them, each shard is written once, in place; from the first that does not, as without a plan (the same
  // bytes, copied once more).
  virtual void plan(std::vector<io::PlannedTensor> tensors) = 0;

  // Closes the shards and writes the index, the description, config.json and the side files copied from
  // `model_dir` (the input model). layer_count_written: 0 = all layers, else the count written (recorded as
  // num_hidden_layers). `metadata` (a JSON object, e.g. the rotation applied) goes where the format has a
  // place for it, and is ignored where it has none.
  virtual WrittenOutput finish(const std::filesystem::path& model_dir, std::int64_t layer_count_written,
                               const nlohmann::ordered_json& metadata = nlohmann::ordered_json::object()) = 0;
};

// What the pipeline will hand the writer for one linear module ("model.layers.0.self_attn.q_proj"): its
// scheme (kFloat for the ones left float), its grid (W4A16's group size and symmetry) and whether it carries a
// float bias.
struct LinearPlan {
  quant::QuantScheme scheme = quant::QuantScheme::kFloat;
  quant::WeightGrid grid;
  bool has_bias = false;
};
using LinearPlanOf = std::function<LinearPlan(const std::string& module)>;

// One add_*() call a writer will be given, planned before the run (writer_calls.h lists a run's).
struct WriterCall {
  enum class Kind { kFloat, kNorm, kLinear };
  Kind kind = Kind::kFloat;
  std::string name;  // kFloat: the tensor's name; kNorm, kLinear: the module's
  Shape shape;       // kFloat: the tensor's; kNorm: {width}; kLinear: the weight's [out, in]
  LinearPlan plan;   // kLinear
};

class OutputFormat {
 public:
  virtual ~OutputFormat() = default;

  virtual std::string_view name() const = 0;

  // kUnsupported naming the format, the module and the scheme when the format cannot hold some linear's
  // scheme (W4A8_DYNAMIC in a v0 layout, static W8A8 in the v1 one). `config`: the layers that will be written.
  virtual void check(const model::ModelConfig& config, const LinearPlanOf& plan_of) const = 0;

  // A writer into `dir` (normally OutputDir::temp_path()); `float_dtype` (BF16 or F16) is the model's float
  // dtype, in which FLOAT tensors are stored.
  virtual std::unique_ptr<FormatWriter> open_writer(const std::filesystem::path& dir, DType float_dtype) const = 0;

  // The quantized model in `dir` as `eval` runs it, reading it as the format's loader does at load time.
  // layer_count > 0 keeps only the first layer_count layers.
  virtual std::unique_ptr<model::LayerSource> open_reader(const std::filesystem::path& dir,
                                                          model::FloatPrecision precision,
                                                          std::int64_t layer_count) const = 0;

  // Checks `dir` against the format; problems are collected in the report, not thrown (kNotFound only when
  // `dir` is not a directory).
  virtual InspectReport inspect(const std::filesystem::path& dir) const = 0;

  // True when `dir` holds this format (its marker files say so; the contents are not checked).
  virtual bool holds(const std::filesystem::path& dir) const = 0;

  // The tensors the writer adds for `call`, in the order it adds them, with their file dtypes and shapes
  // (`float_dtype` as for open_writer). kUnsupported for what check() refuses.
  virtual std::vector<io::PlannedTensor> tensors_of(const WriterCall& call, DType float_dtype) const = 0;

  // The bytes of tensor data a model of `config` (the layers that will be written) takes in this format, with
  // `plan_of` giving each linear's scheme and bias: exactly what the shard index's total_size will say. The
  // shard headers, the index, the description, config.json and the copied side files come on top. Refuses
  // what check() refuses.
  std::uint64_t estimate_bytes(const model::ModelConfig& config, const LinearPlanOf& plan_of, DType float_dtype) const;

  // The serving runtimes that load a model written with `plan_of` in this format ("MindIE", "vLLM-Ascend",
  // "vLLM GPU", "vLLM CPU"), judged by the schemes of layer 0's attention and experts, from what the runtimes'
  // loaders accept (docs/msmodelslim-format.md, docs/compressed-tensors.md). Empty when none does.
  virtual std::vector<std::string> runtimes(const LinearPlanOf& plan_of) const = 0;
};

}  // namespace moeslim::formats
