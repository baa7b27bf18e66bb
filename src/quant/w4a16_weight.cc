#include "quant/w4a16_weight.h"

#include <utility>

#include "core/error.h"

namespace moeslim::quant {

GptqOptions w4a16_options(const WeightGrid& grid, DType float_dtype) {
  GptqOptions o;
  o.bits = WeightBits::kInt4;
  o.symmetric = grid.symmetric;
  o.group_size = grid.group_size;
  o.float_dtype = float_dtype;
  return o;
}

QuantizedLinear w4a16_linear(const model::ModuleId& module, const WeightGrid& grid, GptqResult result) {
  QuantizedLinear q;
  q.module = module;
  q.scheme = QuantScheme::kW4A16;
  q.grid = grid;
  q.weight = std::move(result.codes);
  q.weight_scale = std::move(result.scale);
  q.weight_zero_point = std::move(result.zero_point);
  return q;
}

QuantizedLinear quantize_w4a16_minmax(const model::ModuleId& module, const Tensor& weight, const WeightGrid& grid,
                                      DType float_dtype) {
  try {
    return w4a16_linear(module, grid, round_to_nearest(weight, w4a16_options(grid, float_dtype)));
  } catch (const Error& e) {
    throw Error(e.code(), e.detail(), {}, model::hf_module_name(module) + ".weight");
  }
}

}  // namespace moeslim::quant
