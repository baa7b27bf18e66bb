// The add_*() calls a `quant` run makes on its FormatWriter, known before the run from the config and the
// recipe's plan, and the tensors they write: what a writer is told ahead (FormatWriter::plan) so that each shard
// is written once, and what the output size estimate sums.
#pragma once

#include <vector>

#include "formats/format.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/module_id.h"

namespace moeslim::formats {

// Whether the pipeline hands `module`, of `scheme`, to the writer as a float tensor (add_float of its weight)
// rather than add_linear: a linear outside the attention that stays float (a router, a linear left float).
bool written_as_float_tensor(const model::ModuleId& module, quant::QuantScheme scheme);

// In the order the pipeline hands a model's parts over (pipeline/quant_pipeline.cc and layer_quantizer.cc): the
// embedding; per layer q, k, v and o_proj, q_norm, k_norm, the layer's other linears in Hugging Face module
// order (the router, each expert's gate, up and down_proj, or the dense MLP's), input_layernorm and
// post_attention_layernorm; then model.norm and lm_head. A linear outside the attention that stays float is
// written as its weight (kFloat "<module>.weight"), as the pipeline's writer sink hands it over.
std::vector<WriterCall> writer_calls(const model::ModelConfig& config, const LinearPlanOf& plan_of);

// Every tensor a run writes in `format`, in order: tensors_of each of writer_calls(config, plan_of). Refuses
// what format.check() refuses.
std::vector<io::PlannedTensor> planned_output(const OutputFormat& format, const model::ModelConfig& config,
                                              const LinearPlanOf& plan_of, DType float_dtype);
std::uint64_t total_bytes(const std::vector<io::PlannedTensor>& tensors);

}  // namespace moeslim::formats
