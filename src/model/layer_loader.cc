#include "model/layer_loader.h"

#include "core/error.h"

namespace moeslim::model {

Tensor read_checked(const io::Checkpoint& checkpoint, const std::string& name, const Shape& shape) {
  if (!checkpoint.contains(name)) {
    throw Error(ErrorCode::kNotFound, "tensor required by config.json is missing from the checkpoint",
                checkpoint.dir().string(), name);
  }
  Tensor t = checkpoint.tensor(name);
  if (t.shape() != shape) {
    throw Error(ErrorCode::kFormat,
                "shape " + shape_to_string(t.shape()) + " does not match " + shape_to_string(shape) +
                    " implied by config.json",
                checkpoint.shard_path_of(name).string(), name);
  }
  if (t.dtype() != DType::kBF16 && t.dtype() != DType::kF16 && t.dtype() != DType::kF32) {
    throw Error(ErrorCode::kUnsupported,
                "weights must be BF16, F16 or F32, not " + std::string(dtype_name(t.dtype())),
                checkpoint.shard_path_of(name).string(), name);
  }
  return t;
}

LayerTensors read_layer_tensors(const io::Checkpoint& checkpoint, const ModelConfig& config, std::int64_t layer) {
  LayerTensors out;
  for (const ExpectedTensor& e : expected_layer_tensors(config, layer)) {
    out.emplace(e.name, read_checked(checkpoint, e.name, e.shape));
  }
  return out;
}

Tensor to_f32_vector(const Tensor& t) { return t.dtype() == DType::kF32 && !t.is_view() ? t : t.to_f32(); }

namespace {

const Tensor& get(const LayerTensors& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(ErrorCode::kInternal, "layer tensor not loaded", "", name);
  return it->second;
}

Tensor optional(const LayerTensors& tensors, const std::string& name) {
  auto it = tensors.find(name);
  return it == tensors.end() ? Tensor() : it->second;
}

std::unique_ptr<Linear> linear(const LayerTensors& t, const std::string& module, const LinearFactory& make) {
  return make(module, get(t, module + ".weight"), optional(t, module + ".bias"));
}

RmsNorm norm(const LayerTensors& t, const std::string& module) {
  const Tensor bias = optional(t, module + ".bias");
  return RmsNorm{to_f32_vector(get(t, module + ".weight")), bias.empty() ? Tensor() : to_f32_vector(bias)};
}

SwiGluMlp build_swiglu(const LayerTensors& t, const std::string& prefix, const LinearFactory& make) {
  SwiGluMlp m;
  m.gate_proj = linear(t, prefix + "gate_proj", make);
  m.up_proj = linear(t, prefix + "up_proj", make);
  m.down_proj = linear(t, prefix + "down_proj", make);
  return m;
}

}  // namespace

std::vector<std::string> layer_linear_modules(const ModelConfig& config, std::int64_t layer) {
  const std::string p = layer_prefix(layer);
  std::vector<std::string> out = {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj",
                                  p + "self_attn.o_proj"};
  if (config.is_moe_layer(layer)) {
    out.push_back(p + "mlp.gate");
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) out.push_back(ep + proj);
    }
  } else {
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) out.push_back(p + "mlp." + proj);
  }
  return out;
}

std::vector<std::string> layer_norm_modules(std::int64_t layer) {
  const std::string p = layer_prefix(layer);
  return {p + "self_attn.q_norm", p + "self_attn.k_norm", p + "input_layernorm", p + "post_attention_layernorm"};
}

DecoderLayer build_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                         const LinearFactory& make) {
  const std::string p = layer_prefix(layer);
  DecoderLayer d;
  d.index = layer;
  d.attn.input_norm = norm(t, p + "input_layernorm");
  d.attn.q_proj = linear(t, p + "self_attn.q_proj", make);
  d.attn.k_proj = linear(t, p + "self_attn.k_proj", make);
  d.attn.v_proj = linear(t, p + "self_attn.v_proj", make);
  d.attn.o_proj = linear(t, p + "self_attn.o_proj", make);
  const RmsNorm q_norm = norm(t, p + "self_attn.q_norm");
  const RmsNorm k_norm = norm(t, p + "self_attn.k_norm");
  d.attn.q_norm = q_norm.weight;
  d.attn.k_norm = k_norm.weight;
  d.mlp.post_norm = norm(t, p + "post_attention_layernorm");
  d.mlp.is_moe = config.is_moe_layer(layer);
  if (d.mlp.is_moe) {
    d.mlp.router = linear(t, p + "mlp.gate", make);
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      d.mlp.experts.push_back(build_swiglu(t, p + "mlp.experts." + std::to_string(e) + ".", make));
    }
  } else {
    d.mlp.dense = build_swiglu(t, p + "mlp.", make);
  }
  return d;
}

DecoderLayer build_float_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                               FloatPrecision precision) {
  const std::string router = layer_prefix(layer) + "mlp.gate";
  return build_layer(config, layer, t, [&](const std::string& module, const Tensor& weight, const Tensor& bias) {
    // The router stays float32 in every mode: routing decisions are sensitive and the GEMM is tiny.
    return make_float_linear(weight, bias, module == router ? FloatPrecision::kF32 : precision);
  });
}

}  // namespace moeslim::model
