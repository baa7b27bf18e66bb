// Builds executable float layers (and the embedding / head) from a checkpoint, one decoder layer at a time.
// Tensors stay views into the mapped shards; only small norm vectors are copied to float32.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/module_id.h"

namespace moeslim::model {

// A layer's raw tensors by full name, shape-checked against the config.
using LayerTensors = std::map<std::string, Tensor>;

// Every tensor is read once to check it (check_finite), which faults its mapped pages in. `release_checked`
// hands each one's pages back as soon as it is checked, for a caller that will not read the layer whole (the
// quantizer's expert groups): the scan then never holds the layer's pages at once.
LayerTensors read_layer_tensors(const io::Checkpoint& checkpoint, const ModelConfig& config, std::int64_t layer,
                                bool release_checked = false);

// Makes the Linear for one module from its weight and bias (empty if none).
using LinearFactory =
    std::function<std::unique_ptr<Linear>(const ModuleId& module, const Tensor& weight, const Tensor& bias)>;

// A DecoderLayer over raw tensors: every linear comes from `make_linear`; norms are widened to F32. Optional
// entries "<module>.bias" in `tensors` give linear biases and norm biases (m4's NormBias).
DecoderLayer build_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& tensors,
                         const LinearFactory& make_linear);

// build_layer without a MoE layer's experts (mlp.experts holds num_experts empty entries), for a pass that
// builds them a group at a time with build_expert (grouped_layer_pass.h).
DecoderLayer build_layer_without_experts(const ModelConfig& config, std::int64_t layer, const LayerTensors& tensors,
                                         const LinearFactory& make_linear);
SwiGluMlp build_expert(std::int64_t layer, std::int64_t expert, const LayerTensors& tensors,
                       const LinearFactory& make_linear);

// Float linears (BF16/F16/F32 weights) at `precision`; the router is always float32.
LinearFactory float_linear_factory(FloatPrecision precision);

// A float DecoderLayer over raw tensors: build_layer with float_linear_factory.
DecoderLayer build_float_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& tensors,
                               FloatPrecision precision);

// A tensor checked to exist with the expected shape, a float dtype and only finite values; errors name the
// checkpoint (or the tensor's shard) and the tensor.
Tensor read_checked(const io::Checkpoint& checkpoint, const std::string& name, const Shape& shape);

// kFormat naming `file` and `name` (and the first bad element) when a BF16, F16 or F32 tensor holds a NaN or
// an infinity. One pass over the bits (no conversion); other dtypes are not checked.
void check_finite(const Tensor& t, const std::string& file, const std::string& name);

// Norm weights widened to F32 (exact).
Tensor to_f32_vector(const Tensor& t);

}  // namespace moeslim::model
