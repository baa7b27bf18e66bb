#include "formats/writer_calls.h"

#include <map>
#include <string>

#include "model/layer_loader.h"
#include "model/module_id.h"

namespace moeslim::formats {

using model::ModuleId;
using model::ModuleRole;

bool written_as_float_tensor(const ModuleId& module, quant::QuantScheme scheme) {
  return !module.is_attention() && scheme == quant::QuantScheme::kFloat;
}

std::vector<WriterCall> writer_calls(const model::ModelConfig& config, const LinearPlanOf& plan_of) {
  const Shape vocab_by_hidden{config.vocab_size, config.hidden_size};
  std::vector<WriterCall> calls{{WriterCall::Kind::kFloat, "model.embed_tokens.weight", vocab_by_hidden, {}}};
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    std::map<std::string, Shape> shapes;  // the checkpoint's, by tensor name
    for (const model::ExpectedTensor& t : model::expected_layer_tensors(config, l)) shapes[t.name] = t.shape;
    const auto linear = [&](const ModuleId& id) {
      const std::string module = model::hf_module_name(id);
      const LinearPlan plan = plan_of(module);
      const Shape& weight = shapes.at(model::hf_weight_name(id));
      if (written_as_float_tensor(id, plan.scheme)) {
        calls.push_back({WriterCall::Kind::kFloat, model::hf_weight_name(id), weight, {}});
      } else {
        calls.push_back({WriterCall::Kind::kLinear, module, weight, plan});
      }
    };
    const auto norm = [&](ModuleRole role) {
      const ModuleId id{l, role, -1};
      const auto it = shapes.find(model::hf_weight_name(id));
      if (it != shapes.end()) calls.push_back({WriterCall::Kind::kNorm, model::hf_module_name(id), it->second, {}});
    };
    const std::vector<ModuleId> linears = model::layer_linears(config, l);
    for (const ModuleId& id : linears) {
      if (id.is_attention()) linear(id);
    }
    norm(ModuleRole::kQNorm);
    norm(ModuleRole::kKNorm);
    for (const ModuleId& id : linears) {
      if (!id.is_attention()) linear(id);
    }
    norm(ModuleRole::kInputNorm);
    norm(ModuleRole::kPostAttentionNorm);
  }
  calls.push_back({WriterCall::Kind::kNorm, model::hf_module_name(ModuleId::final_norm()), {config.hidden_size}, {}});
  calls.push_back({WriterCall::Kind::kFloat, "lm_head.weight", vocab_by_hidden, {}});
  return calls;
}

std::vector<io::PlannedTensor> planned_output(const OutputFormat& format, const model::ModelConfig& config,
                                              const LinearPlanOf& plan_of, DType float_dtype) {
  format.check(config, plan_of);
  std::vector<io::PlannedTensor> tensors;
  for (const WriterCall& call : writer_calls(config, plan_of)) {
    for (io::PlannedTensor& t : format.tensors_of(call, float_dtype)) tensors.push_back(std::move(t));
  }
  return tensors;
}

std::uint64_t total_bytes(const std::vector<io::PlannedTensor>& tensors) {
  std::uint64_t bytes = 0;
  for (const io::PlannedTensor& t : tensors) bytes += t.nbytes();
  return bytes;
}

std::uint64_t OutputFormat::estimate_bytes(const model::ModelConfig& config, const LinearPlanOf& plan_of,
                                           DType float_dtype) const {
  return total_bytes(planned_output(*this, config, plan_of, float_dtype));
}

}  // namespace moeslim::formats
