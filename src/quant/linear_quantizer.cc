#include "quant/linear_quantizer.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {

QuantizedLinear quantize_linear_weight(const model::ModuleId& module, QuantScheme scheme, const Tensor& weight,
                                       const Tensor& bias, DType float_dtype) {
  const std::string name = model::hf_module_name(module);
  if (scheme != QuantScheme::kW8A8 && scheme != QuantScheme::kW8A8Dynamic) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("int8 weight quantization does not produce ") + quant_scheme_name(scheme), {}, name);
  }
  if (!bias.empty() && (bias.dtype() != DType::kF32 || weight.rank() != 2 ||
                        static_cast<std::int64_t>(bias.numel()) != weight.dim(0))) {
    throw Error(ErrorCode::kInvalidArgument, "bias must be F32 [out], got " + shape_to_string(bias.shape()), {},
                name + ".bias");
  }
  ChannelQuantizedWeight q;
  try {
    q = quantize_weight_int8_per_channel(weight, float_dtype);
  } catch (const Error& e) {
    throw Error(e.code(), e.detail(), {}, name + ".weight");
  }
  QuantizedLinear out;
  out.module = module;
  out.scheme = scheme;
  out.weight = std::move(q.codes);
  out.weight_scale = std::move(q.scale);
  out.bias = bias;
  return out;
}

void set_static_activation(QuantizedLinear& linear, const ActivationParams& params, DType float_dtype) {
  if (linear.scheme != QuantScheme::kW8A8) {
    throw Error(ErrorCode::kInternal, "static activation parameters on a non-W8A8 linear", {},
                model::hf_module_name(linear.module));
  }
  const std::int64_t out = linear.weight.dim(0), in = linear.weight.dim(1);
  linear.input_scale = Tensor::zeros(DType::kF32, {1});
  linear.input_offset = Tensor::zeros(DType::kF32, {1});
  linear.input_scale.mutable_data<float>()[0] = params.scale;
  linear.input_offset.mutable_data<float>()[0] = params.offset;
  linear.deq_scale = Tensor::zeros(DType::kF32, {out});
  linear.quant_bias = Tensor::zeros(DType::kI32, {out});
  const float* s = linear.weight_scale.data<float>();
  const std::int8_t* w = linear.weight.data<std::int8_t>();
  const float* b = linear.bias.empty() ? nullptr : linear.bias.data<float>();
  for (std::int64_t n = 0; n < out; ++n) {
    const float deq = round_to_float_dtype(params.scale * s[n], float_dtype);
    std::int64_t code_sum = 0;
    for (std::int64_t k = 0; k < in; ++k) code_sum += w[n * in + k];
    // Σ q·offset is an integer below 2^24 in magnitude for any real layer, so float32 holds it exactly.
    const float correction = static_cast<float>(code_sum) * params.offset;
    const float v = std::nearbyint((b != nullptr ? b[n] : 0.0f) / deq - correction);
    if (!(std::fabs(v) < 2147483647.0f)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "quant_bias overflows int32 (bias " + std::to_string(b != nullptr ? b[n] : 0.0f) +
                      ", deq_scale " + std::to_string(deq) + ")",
                  {}, model::hf_module_name(linear.module) + ".quant_bias[" + std::to_string(n) + "]");
    }
    linear.deq_scale.mutable_data<float>()[n] = deq;
    linear.quant_bias.mutable_data<std::int32_t>()[n] = static_cast<std::int32_t>(v);
  }
}

}  // namespace moeslim::quant
