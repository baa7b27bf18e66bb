// A weight quantizer that quantize groups name (`weight: minmax | ssz`): from a linear's (smoothed) float weight
// to its integer codes and scales. Registered in step_registry.cc with the group keys it owns.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "model/module_id.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

class WeightMethod {
 public:
  virtual ~WeightMethod() = default;
  virtual std::string name() const = 0;
  virtual nlohmann::ordered_json settings() const = 0;
  // Which schemes it can produce (the parser refuses a group that pairs it with another).
  virtual bool supports(QuantScheme scheme) const = 0;
  // `weight` [out, in] (BF16/F16/F32, any view), `bias` F32 [out] or empty, kept as the float bias where the
  // scheme has one. Errors name the module's weight.
  virtual QuantizedLinear quantize(const model::ModuleId& module, QuantScheme scheme, const Tensor& weight,
                                   const Tensor& bias, DType float_dtype) const = 0;
};

}  // namespace moeslim::quant
