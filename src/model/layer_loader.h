// Builds executable float layers (and the embedding / head) from a checkpoint, one decoder layer at a time.
// Tensors stay views into the mapped shards; only small norm vectors are copied to float32.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/decoder_layer.h"

namespace moeslim::model {

// A layer's raw tensors by full name, shape-checked against the config.
using LayerTensors = std::map<std::string, Tensor>;

LayerTensors read_layer_tensors(const io::Checkpoint& checkpoint, const ModelConfig& config, std::int64_t layer);

// A float DecoderLayer over raw tensors (BF16/F16/F32 weights).
DecoderLayer build_float_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& tensors,
                               FloatPrecision precision);

// A tensor checked to exist with the expected shape; errors name the checkpoint and the tensor.
Tensor read_checked(const io::Checkpoint& checkpoint, const std::string& name, const Shape& shape);

// Norm weights widened to F32 (exact).
Tensor to_f32_vector(const Tensor& t);

}  // namespace moeslim::model
