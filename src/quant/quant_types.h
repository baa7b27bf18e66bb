// What the quantization pipeline produces for one linear layer, independent of any file format. The output
// formats map it to tensors (names, dtypes, shapes of msModelSlim's formats); the quantized runtime computes
// with it. Values follow docs/msmodelslim-algorithms.md §4 (W8A8) and §6 (W4A8); W4A16 is GPTQ's grid (gptq.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/module_id.h"

namespace moeslim::quant {

enum class QuantScheme {
  kFloat,        // left unquantized (router, lm_head, embeddings, norms)
  kW8A8,         // int8 per-channel weights, static per-tensor asymmetric int8 activations
  kW8A8Dynamic,  // int8 per-channel weights, per-token symmetric int8 activations at run time
  kW4A8Dynamic,  // int4 per-channel weights (stored unpacked here, one code per int8), per-token int8 activations
  kW4A16,        // int4 weights per group of input columns (or per channel), float activations (weight-only)
};

// How a W4A16 linear's weights are gridded (the other schemes are per channel and symmetric: the default).
struct WeightGrid {
  std::int64_t group_size = 0;  // input columns per scale; 0: one scale per output channel
  bool symmetric = true;        // false: an integer zero point per scale

  bool operator==(const WeightGrid&) const = default;
};

// "FLOAT", "W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC", "W4A16": the description-file spelling.
const char* quant_scheme_name(QuantScheme scheme);

struct QuantizedLinear {
  model::ModuleId module;  // which linear; an output format makes its tensor names from it
  QuantScheme scheme = QuantScheme::kFloat;
  Tensor weight;        // kFloat: float weight; otherwise I8 codes [out, in] (int4 codes in [-8, 7], unpacked)
  Tensor bias;          // F32 [out] or empty: the float bias (m4's W·shift for q/k/v)
  Tensor weight_scale;  // F32 [out]: per-output-channel scale (bf16-representable values in the W8A8 v0 path);
                        // kW4A16: F32 [out, groups] (groups = 1 per channel), values representable in the model dtype
  Tensor weight_zero_point;  // kW4A16 asymmetric only: F32 [out, groups], integer codes; the weight is (q − z)·s
  WeightGrid grid;           // kW4A16: the grid the codes are on (an output format names it); else the default
  // kW8A8 only:
  Tensor input_scale;   // F32 [1]
  Tensor input_offset;  // F32 [1], integer-valued in [-128, 127]
  Tensor deq_scale;     // F32 [out] = float32(bf16(input_scale · weight_scale))
  Tensor quant_bias;    // I32 [out] = rne(bias / deq_scale − Σ_k weight · input_offset)
};

// A float norm as written: weight and (m4's NormBias) bias, both F32 [n]; bias may be empty (W4A8 path).
struct NormTensors {
  model::ModuleId module;  // a layer's norm or ModuleId::final_norm()
  Tensor weight;
  Tensor bias;
};

}  // namespace moeslim::quant
