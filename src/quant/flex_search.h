// The α/β search of msModelSlim's flex_smooth_quant (docs/msmodelslim-algorithms.md §6.3): a grid over α, then
// over β, each point scored by the int8 fake-quantized subgraph's error against the float one.
//
// Reading of the ambiguous points (the reasons are in flex_search.cc):
//  * Grid: msModelSlim builds it as np.round(np.arange(0, 1 + 0.05, 0.05), 2): 21 points, each the double nearest
//    to i/20 (arange computes start + i·step, not a running sum, and the rounding to 2 decimals then snaps
//    i·0.05's stray last bits, e.g. 3·0.05 = 0.15000000000000002 → 0.15). flex_grid_value(i) = (5i)/100.0.
//  * Phase 1 uses β = 1.0 − α in double, which for α ∈ {0.55, 0.7, 0.8, 0.85, 0.9, 0.95} is one ulp away from the
//    grid's β. moeslim hands exponents to pow as float32 (PyTorch's bf16 pow computes in float32), where the
//    two coincide, so phase 2's grid point β = 1 − α reproduces phase 1's error bit for bit.
//  * The β fallback quirk: phase 2 starts from best = phase-1 error and β = 0.0, and only replaces β on an
//    error ≤ best. If no β reaches the phase-1 error, β stays 0.0, a value that was never the best (and the
//    reported error is then the phase-1 error, which belongs to (α, 1−α), not to (α, 0)). As the previous point
//    shows, flex_error itself is deterministic, so the fallback needs an error function with noise (msModelSlim's
//    NPU) or a NaN; flex_grid_search exposes the rule so tests can show it. Reproduced as is.
//  * Error resolution: msModelSlim evaluates in the weight dtype and compares `.item()` of a bf16 tensor, so the
//    errors it compares have 8 significant bits and neighbouring grid points often tie; the "last α/β with
//    err ≤ best" rule then picks the largest tied value. flex_error rounds the two rms values and their ratio
//    to the dtype for the same reason (see flex_error).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace moeslim::quant {

inline constexpr int kFlexGridPoints = 21;  // {0, 0.05, …, 1.0}

// Grid point i ∈ [0, 21): (5·i)/100.0, i.e. the double nearest to i/20 (what np.round(…, 2) yields).
double flex_grid_value(int i);

// err(α, β) = rms(Q8(X/σ)·Q8(Wc⊙σ)ᵀ − X·Wcᵀ) / rms(X·Wcᵀ), σ_j = max_t|X_tj|^α · max_i|Wc_ij|^(−β), Wc the
// weights stacked by rows (norm-linear: k, q, v; ov: o_proj), Q8 per-row symmetric int8 fake quantization
// (interval = dt(max|row|/127), code = clip(rne(dt(v/interval)), ±127)); rows are tokens for X, output channels
// for W. x: F32 [N, C] activation rows; weights: F32 [out_i, C]. X and W are rounded to the dtype first
// (msModelSlim holds them in the weight dtype).
// The quantized product is computed exactly with the int8 GEMM (codes, int32) and scaled afterwards; msModelSlim
// instead multiplies the bf16-rounded fake-quant values (≤ 2^-9 relative each), a small, grid-uniform difference.
// Both products are rounded to the dtype per element (as bf16 matmul outputs are), the mean squares are summed
// in double, and rms numerator, denominator and ratio are rounded to the dtype.
// NaN where msModelSlim's tensors would hold a NaN: a σ_j of 0 or ∞ (a zero activation column with α > 0, a zero
// weight column with β > 0) or an all-zero row after scaling (its interval is 0 and 0/0 follows); the search
// then skips that grid point, as `nan <= best` is false in Python too.
double flex_error(const Tensor& x, const std::vector<const Tensor*>& weights, double alpha, double beta,
                  DType float_dtype);

// One grid point the search evaluated to its exact error (the loss curve a report draws).
struct FlexSearchPoint {
  double alpha = 0.0;
  double beta = 0.0;
  double error = 0.0;
};

struct FlexSearchResult {
  double alpha = 0.0;
  double beta = 0.0;
  double error = 0.0;  // the best error seen (phase 2's, or phase 1's when the β fallback fires)
  // flex_grid_search_pruned: the points whose error was computed in full, in the order evaluated (phase 1's,
  // then phase 2's); a point stopped early (its error shown above the cutoff) or NaN is left out.
  std::vector<FlexSearchPoint> exact_points{};
};

// The selection rule alone, on any error function: phase 1 α over the grid with β = 1.0 − α, keeping the last
// α with err ≤ best (best starts at +∞, α at 0.0); phase 2 β over the grid with α fixed, best starting at the
// phase-1 error and β at 0.0, keeping the last β with err ≤ best (hence the fallback quirk above).
FlexSearchResult flex_grid_search(const std::function<double(double alpha, double beta)>& error);

// The same rule, for an error function that may stop early: error(α, β, cutoff) returns the exact error, NaN,
// or, when it can tell the error exceeds `cutoff`, any value above `cutoff`. The cutoff passed is the best
// exact error seen so far, and the grid points are evaluated in an order that finds a good one early (the
// middle of the grid first, then outwards); a point whose error exceeds an error already seen cannot be the
// last minimum, so the pick is the one flex_grid_search makes with the exact errors. Phase 2's point
// β = float(1 − α) is phase 1's, and reuses its error (the function is deterministic in float32 exponents).
FlexSearchResult flex_grid_search_pruned(const std::function<double(double alpha, double beta, double cutoff)>& error);

struct FlexSearchOptions {
  std::int64_t max_rows = 0;  // 0 = every row of X (msModelSlim); see search_flex_alpha_beta
};

// flex_grid_search on flex_error, with the same pick at a fraction of the cost: X·Wcᵀ and the column maxima are
// computed once per search, not per grid point, and flex_grid_search_pruned stops a grid point's error as soon
// as the rows summed so far prove it above the best one (the squared errors only add up).
// options.max_rows > 0 (and < N) evaluates the error on max_rows rows of X taken at an even stride (row ⌊i·N/max_rows⌋):
// a departure from msModelSlim, which uses every row, for speed and memory on big models (the search holds
// X·Wcᵀ, N·Σout_i floats). σ's activation maxima still come from all N rows, as the real scales do.
FlexSearchResult search_flex_alpha_beta(const Tensor& x, const std::vector<const Tensor*>& weights,
                                        DType float_dtype, const FlexSearchOptions& options = {});

}  // namespace moeslim::quant
