#include "formats/compressed_tensors/format.h"

#include <string>

#include "core/error.h"
#include "formats/compressed_tensors/quantization_config.h"
#include "formats/compressed_tensors/reader.h"
#include "formats/compressed_tensors/writer.h"
#include "formats/hf_directory.h"
#include "formats/module_names.h"
#include "io/checkpoint.h"
#include "model/module_id.h"

namespace moeslim::formats::compressed_tensors {
namespace {

class CompressedTensorsFormat final : public OutputFormat {
 public:
  std::string_view name() const override { return "compressed-tensors"; }

  void check(const model::ModelConfig& config, const LinearPlanOf& plan_of) const override {
    quantization_config(config, plan_of);
  }

  std::unique_ptr<FormatWriter> open_writer(const std::filesystem::path& dir, DType float_dtype) const override {
    return std::make_unique<CtWriter>(dir, float_dtype);
  }

  std::unique_ptr<model::LayerSource> open_reader(const std::filesystem::path& dir, model::FloatPrecision precision,
                                                  std::int64_t layer_count) const override {
    return std::make_unique<CtLayerSource>(dir, precision, layer_count);
  }

  // The files, then every module loaded as `eval` loads it: what the loader would refuse is a violation, by
  // the tensor or config.json key it concerns.
  InspectReport inspect(const std::filesystem::path& dir) const override {
    InspectReport r;
    r.dir = dir;
    r.layout = std::string(name());
    r.description_file = kConfigFile;
    r.model_quant_type = "compressed-tensors";
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) throw Error(ErrorCode::kNotFound, "not a directory", dir.string());
    const auto violation = [&](const Error& e) {  // about the tensor or key it names, else its file
      const std::string& file = e.file().empty() ? dir.string() : e.file();
      r.violations.push_back({e.field().empty() ? file : e.field(), e.detail()});
    };
    try {
      const io::Checkpoint ckpt = io::Checkpoint::open(dir);
      for (const io::ShardStats& s : ckpt.shard_stats()) {
        r.shard_names.push_back(s.file_name);
        r.tensor_count += s.tensor_count;
        r.total_size += s.bytes;
      }
      if (ckpt.is_sharded()) r.index_file = "model.safetensors.index.json";
      CtLayerSource source(dir);
      r.float_dtype = source.config().torch_dtype == "float16" ? DType::kF16 : DType::kBF16;
      for (std::int64_t l = 0; l < source.config().num_hidden_layers; ++l) {
        for (const model::ModuleId& id : model::layer_linears(source.config(), l)) {
          const std::string module = model::hf_module_name(id);
          try {
            InspectTypeSummary& t = r.by_type[source.scheme_name(module)];
            ++t.modules;
            for (const std::string& n : ckpt.names_with_prefix(module + ".")) {
              ++t.tensors;
              t.bytes += ckpt.info(n).nbytes();
            }
          } catch (const Error& e) {
            violation(e);
          }
        }
        try {
          source.load_layer(l);
          source.release_layer(l);
        } catch (const Error& e) {
          violation(e);
        }
      }
      try {
        source.embedding();
        source.final_norm();
        source.lm_head();
      } catch (const Error& e) {
        violation(e);
      }
    } catch (const Error& e) {
      violation(e);
    }
    return r;
  }

  bool holds(const std::filesystem::path& dir) const override { return holds_compressed_tensors(dir); }

  // From the scheme selection of docs/compressed-tensors.md §3–§4:
  //   vLLM on GPUs: W8A8 int8 dynamic and W4A16 (WNA16); its W4A8 int methods run only on CPUs;
  //   vLLM on CPUs: W8A8 int8 dynamic and W4A8 int;
  //   vLLM-Ascend: experts W8A8_DYNAMIC, W4A8_DYNAMIC or W4A16 by group; attention float or W8A8_DYNAMIC (it has
  //     no 4-bit linear scheme).
  std::vector<std::string> runtimes(const LinearPlanOf& plan_of) const override {
    using quant::QuantScheme;
    const LinearPlan attention = plan_of("model.layers.0.self_attn.q_proj");
    const LinearPlan experts = plan_of("model.layers.0.mlp.experts.0.gate_proj");
    const auto all = [&](const auto& ok) { return ok(attention, false) && ok(experts, true); };
    std::vector<std::string> out;
    if (all([](const LinearPlan& p, bool) {
          return p.scheme == QuantScheme::kFloat || p.scheme == QuantScheme::kW8A8Dynamic ||
                 p.scheme == QuantScheme::kW4A16;
        })) {
      out.push_back("vLLM GPU");
    }
    if (all([](const LinearPlan& p, bool) {
          return p.scheme == QuantScheme::kFloat || p.scheme == QuantScheme::kW8A8Dynamic ||
                 p.scheme == QuantScheme::kW4A8Dynamic;
        })) {
      out.push_back("vLLM CPU");
    }
    if (all([](const LinearPlan& p, bool expert) {
          if (p.scheme == QuantScheme::kFloat || p.scheme == QuantScheme::kW8A8Dynamic) return true;
          if (!expert) return false;
          return p.scheme == QuantScheme::kW4A8Dynamic || (p.scheme == QuantScheme::kW4A16 && p.grid.group_size > 0);
        })) {
      out.push_back("vLLM-Ascend");
    }
    return out;
  }

  // Float tensors, norm weights and float linears in the float dtype; a quantized linear's tensors as
  // ct_linear_tensors lays them out.
  std::vector<io::PlannedTensor> tensors_of(const WriterCall& call, DType float_dtype) const override {
    switch (call.kind) {
      case WriterCall::Kind::kFloat:
        return {{call.name, float_dtype, call.shape}};
      case WriterCall::Kind::kNorm:
        return {{tensor_name(call.name, "weight"), float_dtype, call.shape}};
      case WriterCall::Kind::kLinear:
        break;
    }
    if (call.plan.scheme == quant::QuantScheme::kFloat)
      return {{tensor_name(call.name, "weight"), float_dtype, call.shape}};
    const CtScheme s = ct_scheme(call.plan.scheme, call.plan.grid, call.name);
    std::vector<io::PlannedTensor> out;
    for (const CtTensor& c : ct_linear_tensors(s, call.shape.at(0), call.shape.at(1), float_dtype, call.name)) {
      out.push_back({tensor_name(call.name, c.suffix), c.dtype, c.shape});
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<OutputFormat> make_format() { return std::make_unique<CompressedTensorsFormat>(); }

}  // namespace moeslim::formats::compressed_tensors
