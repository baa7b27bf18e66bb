// msModelSlim v1 per-channel symmetric weight quantizers, `minmax` and `ssz`, int8 and int4
// (docs/msmodelslim-algorithms.md §6.4; used by the W8A8_DYNAMIC / W4A8_DYNAMIC linears of §6.2).
//
// Both quantize every output row n of W [out, in] with one scale s_n and offset 0:
//   quant(W, s)[n,k] = clamp(rne(dt(W[n,k] / s_n)), −2^(b−1), 2^(b−1)−1)      int8 [−128,127], int4 [−8,7]
// minmax:  s_n = max(dt(max_k |W[n,k]| / (2^(b−1)−1)), dt(eps32))
// ssz:     starts from the minmax scale and refines it by least squares (details below).
// dt(·) rounds to the model's float dtype; F32 rounds nothing.
//
// Which quantities are in which dtype. msModelSlim runs these quantizers when the linear is deployed, outside
// the forward's float-type context, so its dequantize() returns float32 (QStorage's default float type), while
// everything computed on the weight tensor stays in the weight dtype:
//   dt (bf16 for a bf16 model): the scales s and s'; the quotient W/s; the dequantized value q·s (then widened
//     exactly to fp32); each product W·q and q·q; the sums Σ W·q and Σ q² (accumulated in fp32, result rounded
//     to dt, as PyTorch reduces a bf16 tensor); the quotient s' = dt(Σ W·q) / max(dt(Σ q²), dt(1e-30)).
//   fp32: the error W − q·s, its square, and the MSE (Σ in fp32, then / in); the stop and adoption tests.
// fp32 sums run in a fixed order: 16 interleaved partial sums (element k goes to partial k mod 16), combined
// pairwise (p[j] + p[j+8], then +4, +2, +1). PyTorch's own order is not reproducible; this one is the same on
// every kernel path and thread count, so results are bit-identical across both.
//
// ssz, per row (the symmetric branch of msModelSlim's ssz_calculate_qparam):
//   s_0 = minmax scale; best = mse(s_0), where mse(s) = mean_k (W − dt(quant(W,s)·s))²
//   iteration t = 1..steps: q = quant(W, s_{t−1}); s_t = dt(dt(Σ W·q) / max(dt(Σ q²), dt(1e-30))); cur = mse(s_t)
//     stop rule — the loop (over all rows together) ends before any adoption at the first iteration where no
//     row "still improves", a row still improving when d = best − cur satisfies both
//       d / max(best, 1e-4) ≥ 1e-10   and   |d| ≥ 1e-10
//     (msModelSlim's mask1/mask2: a row counts as converged when either the relative or the absolute change is
//     below 1e-10; a worse candidate, d < 0, is converged by the relative test);
//     otherwise each row with cur < best adopts s_t (greedy), and the next iteration starts from the candidate
//     s_t (its codes), adopted or not.
//   final codes = quant(W, s_best).
// Rows are independent except for the shared stop: each row is iterated on its own (stopping early once its
// candidate scale repeats an earlier one, after which nothing can change), and the shared stop iteration is
// applied afterwards. A row whose least-squares step degenerates (all codes 0, so Σ q² = 0: a zero row, or
// max|W| ≤ eps32/2) keeps its scale (eps32); msModelSlim would divide by its 1e-30 clamp and go on from
// codes of W/0, which no real weight row reaches.
#pragma once

#include <string>

#include "core/tensor.h"
#include "quant/quant_types.h"
#include "quant/weight_quant.h"

namespace moeslim::quant {

enum class WeightBits { kInt8, kInt4 };

// The v1 weight methods the W8A8_DYNAMIC / W4A8_DYNAMIC recipes name (`method: minmax` / `method: ssz`).
enum class V1WeightMethod { kMinMax, kSsz };

struct V1WeightOptions {
  WeightBits bits = WeightBits::kInt8;
  DType float_dtype = DType::kBF16;  // the model's float dtype: BF16, F16 or F32 (no intermediate rounding)
  int ssz_steps = 50;                // msModelSlim's ext.step; at least 1
};

// `weight`: [out, in] in BF16, F16 or F32 (a mapped view is fine). Codes I8 [out, in] (int4 codes one per int8,
// unpacked, in [−8, 7]); scale F32 [out], each value representable in `float_dtype`.
// kInvalidArgument for a non-2-D or non-float weight, a row holding a NaN or an infinity, or ssz_steps < 1.
ChannelQuantizedWeight quantize_weight_minmax_v1(const Tensor& weight, const V1WeightOptions& options);
ChannelQuantizedWeight quantize_weight_ssz(const Tensor& weight, const V1WeightOptions& options);

// The v1 counterpart of quantize_linear_weight (linear_quantizer.h): scheme kW8A8Dynamic quantizes to int8,
// kW4A8Dynamic to int4 (options.bits is overridden by the scheme). Fills module, scheme, weight (codes) and
// weight_scale (F32 [out]); v1 linears carry no bias. Errors name the module's weight.
// The schemes quantize_linear_weight_v1 produces: kW8A8Dynamic and kW4A8Dynamic.
bool v1_weight_quant_produces(QuantScheme scheme);

QuantizedLinear quantize_linear_weight_v1(const model::ModuleId& module, QuantScheme scheme, const Tensor& weight,
                                          V1WeightMethod method, const V1WeightOptions& options);

}  // namespace moeslim::quant
