// A weight quantizer that quantize groups name (`weight: minmax | ssz | gptq`): from a linear's (smoothed) float
// weight, and for a method fitted to data the Hessian of its calibration inputs, to its integer codes and
// scales. Registered in step_registry.cc with the group keys it owns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/large_buffer.h"
#include "core/tensor.h"
#include "model/module_id.h"
#include "quant/quant_types.h"

namespace moeslim::quant {

// The Hessian of a linear's input over the calibration rows that reached it, H = 2/n·Σ x xᵀ (quant/hessian.h).
// Linears that read one input (q/k/v_proj, gate/up_proj) share one, and what a method derives from it (GPTQ's
// factor, as costly as the Hessian itself) is made once for all of them, by the first that asks.
struct InputHessian {
  LargeVector<float> values;  // [in, in] row-major, both triangles
  std::int64_t rows = 0;      // the real calibration rows it was summed over

  // The object `make()` returns for `key` (which must name everything it depends on), made on the first call;
  // safe to call from several threads at once.
  template <typename T, typename Make>
  std::shared_ptr<const T> derived(const std::string& key, const Make& make) const {
    std::lock_guard<std::mutex> lock(derived_mutex_);
    std::shared_ptr<const void>& slot = derived_[key];
    if (slot == nullptr) slot = std::make_shared<const T>(make());
    return std::static_pointer_cast<const T>(slot);
  }

 private:
  mutable std::mutex derived_mutex_;
  mutable std::map<std::string, std::shared_ptr<const void>> derived_;
};

// One linear to quantize.
struct LinearToQuantize {
  const model::ModuleId& module;
  QuantScheme scheme;
  const Tensor& weight;  // [out, in] BF16/F16/F32, any view
  const Tensor& bias;    // F32 [out] or empty, kept as the float bias where the scheme has one
  DType float_dtype;     // the model's
  WeightGrid grid;       // kW4A16's group size and symmetry (the group's); the other schemes use the default
  // For a method that needs_input_hessian(): the Hessian of the linear's input, or nullptr when no calibration
  // row reached it (an expert the router never picked).
  const InputHessian* hessian = nullptr;
  // The recipe's data.min_expert_tokens for an expert's linear (0 for the others): a data-fitted method leaves
  // an expert that fewer calibration tokens reached to its data-free fallback.
  std::int64_t min_tokens = 0;
};

struct QuantizedWeight {
  QuantizedLinear linear;
  // Empty, or why a data-fitted method quantized this linear with its data-free fallback instead (too few
  // calibration rows, a Hessian that is not positive definite), for the report.
  std::string fallback;
};

class WeightMethod {
 public:
  virtual ~WeightMethod() = default;
  virtual std::string name() const = 0;
  virtual nlohmann::ordered_json settings() const = 0;
  // Which schemes it can produce (the parser refuses a group that pairs it with another).
  virtual bool supports(QuantScheme scheme) const = 0;
  // Whether quantize() reads the Hessian of the linear's calibration inputs: the quantize step then computes it.
  virtual bool needs_input_hessian() const { return false; }
  // Errors name the module's weight.
  virtual QuantizedWeight quantize(const LinearToQuantize& linear) const = 0;
};

}  // namespace moeslim::quant
