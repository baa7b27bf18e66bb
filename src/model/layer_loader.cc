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

SwiGluMlp build_swiglu(const LayerTensors& t, const std::string& prefix, FloatPrecision precision) {
  SwiGluMlp m;
  m.gate_proj = make_float_linear(get(t, prefix + "gate_proj.weight"), Tensor(), precision);
  m.up_proj = make_float_linear(get(t, prefix + "up_proj.weight"), Tensor(), precision);
  m.down_proj = make_float_linear(get(t, prefix + "down_proj.weight"), Tensor(), precision);
  return m;
}

}  // namespace

DecoderLayer build_float_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                               FloatPrecision precision) {
  const std::string p = layer_prefix(layer);
  DecoderLayer d;
  d.index = layer;
  d.attn.input_norm.weight = to_f32_vector(get(t, p + "input_layernorm.weight"));
  d.attn.q_proj = make_float_linear(get(t, p + "self_attn.q_proj.weight"), Tensor(), precision);
  d.attn.k_proj = make_float_linear(get(t, p + "self_attn.k_proj.weight"), Tensor(), precision);
  d.attn.v_proj = make_float_linear(get(t, p + "self_attn.v_proj.weight"), Tensor(), precision);
  d.attn.o_proj = make_float_linear(get(t, p + "self_attn.o_proj.weight"), Tensor(), precision);
  d.attn.q_norm = to_f32_vector(get(t, p + "self_attn.q_norm.weight"));
  d.attn.k_norm = to_f32_vector(get(t, p + "self_attn.k_norm.weight"));
  d.mlp.post_norm.weight = to_f32_vector(get(t, p + "post_attention_layernorm.weight"));
  d.mlp.is_moe = config.is_moe_layer(layer);
  if (d.mlp.is_moe) {
    // The router stays float32 in every mode: routing decisions are sensitive and the GEMM is tiny.
    d.mlp.router = make_float_linear(get(t, p + "mlp.gate.weight"), Tensor(), FloatPrecision::kF32);
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      d.mlp.experts.push_back(build_swiglu(t, p + "mlp.experts." + std::to_string(e) + ".", precision));
    }
  } else {
    d.mlp.dense = build_swiglu(t, p + "mlp.", precision);
  }
  return d;
}

}  // namespace moeslim::model
