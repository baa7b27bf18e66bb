// Pieces both per-layer quantizers use: running a layer over an activation set, the error measure, the
// editable copies smoothing works on, and the norms and float linears as written.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/layer_loader.h"
#include "model/observer.h"
#include "pipeline/layer_types.h"

namespace moeslim::pipeline {

// The layer over every batch of `set`, in place.
void run_layer(const model::ModelConfig& config, const model::DecoderLayer& layer, ActivationSet& set,
               model::ForwardObserver* observer);

// ‖quantized − reference‖ / ‖reference − input‖ over real rows: the quantization error relative to the layer's
// float update of the residual stream.
double relative_update_error(const Tensor& quantized, const Tensor& reference, const Tensor& input,
                             const model::TokenLayout& layout);

// A norm as written: weight (F32) and its bias, if `tensors` has one; zeros when `with_bias` and none is set
// (m4's NormBias gives every norm a bias).
quant::NormTensors norm_tensors(const model::LayerTensors& tensors, const std::string& module, bool with_bias);

// `raw` with the attention weights and input_layernorm as float32 copies, which smoothing edits in place (the
// rest stay views; experts are smoothed one at a time as they are quantized, see expert_smoothing.h).
model::LayerTensors with_editable_attention(const model::LayerTensors& raw, std::int64_t layer);

// A linear left in float: its weight and bias as they are.
quant::QuantizedLinear float_linear(const std::string& module, const Tensor& weight, const Tensor& bias);

// "model.layers.3.mlp.experts.17.up_proj" → 17; −1 for anything else.
std::int64_t expert_index(const std::string& module);

}  // namespace moeslim::pipeline
