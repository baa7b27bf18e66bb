#include "pipeline/layer_common.h"

#include <cctype>
#include <cmath>
#include <limits>

#include "model/causal_lm.h"

namespace moeslim::pipeline {

void run_layer(const model::ModelConfig& config, const model::DecoderLayer& layer, ActivationSet& set,
               model::ForwardObserver* observer) {
  model::run_layer_chunked(config, layer, set.hidden, *set.layout, std::numeric_limits<std::int64_t>::max(),
                           set.batch_size, observer);
}

double relative_update_error(const Tensor& quantized, const Tensor& reference, const Tensor& input,
                             const model::TokenLayout& layout) {
  const std::int64_t cols = reference.dim(1);
  double err = 0, update = 0;
  const float* q = quantized.data<float>();
  const float* r = reference.data<float>();
  const float* x = input.data<float>();
  for (std::int64_t row = 0; row < reference.dim(0); ++row) {
    if (layout.real[static_cast<std::size_t>(row)] == 0) continue;
    for (std::int64_t c = row * cols; c < (row + 1) * cols; ++c) {
      err += (static_cast<double>(q[c]) - r[c]) * (static_cast<double>(q[c]) - r[c]);
      update += (static_cast<double>(r[c]) - x[c]) * (static_cast<double>(r[c]) - x[c]);
    }
  }
  return update > 0 ? std::sqrt(err / update) : 0.0;
}

quant::NormTensors norm_tensors(const model::LayerTensors& tensors, const std::string& module, bool with_bias) {
  quant::NormTensors n{module, model::to_f32_vector(tensors.at(module + ".weight")), Tensor()};
  const auto it = tensors.find(module + ".bias");
  if (it != tensors.end()) {
    n.bias = it->second;
  } else if (with_bias) {
    n.bias = Tensor::zeros(DType::kF32, {static_cast<std::int64_t>(n.weight.numel())});
  }
  return n;
}

model::LayerTensors with_editable_attention(const model::LayerTensors& raw, std::int64_t layer) {
  const std::string p = model::layer_prefix(layer);
  model::LayerTensors t = raw;
  for (const char* m : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                        "self_attn.o_proj.weight", "input_layernorm.weight"}) {
    Tensor& w = t.at(p + m);
    w = w.to_f32();
  }
  return t;
}

quant::QuantizedLinear float_linear(const std::string& module, const Tensor& weight, const Tensor& bias) {
  quant::QuantizedLinear linear;
  linear.name = module;
  linear.scheme = quant::QuantScheme::kFloat;
  linear.weight = weight;
  linear.bias = bias;
  return linear;
}

std::int64_t expert_index(const std::string& module) {
  const std::string key = ".mlp.experts.";
  const auto at = module.find(key);
  if (at == std::string::npos) return -1;
  std::int64_t e = 0;
  std::size_t i = at + key.size();
  if (i >= module.size() || !std::isdigit(static_cast<unsigned char>(module[i]))) return -1;
  for (; i < module.size() && std::isdigit(static_cast<unsigned char>(module[i])); ++i) e = e * 10 + (module[i] - '0');
  return e;
}

}  // namespace moeslim::pipeline
