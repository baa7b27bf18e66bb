// The GEMM throughput this machine reaches right now, so benchmarks can report "fraction of peak" measured in
// the same run (same CPU, same load, same thread setting) instead of against a datasheet number.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/gemm.h"

namespace moeslim::kernels {

// Runs `step` once to warm up (primitive creation, page faults), then until `seconds` pass; returns the
// average seconds per call. Shared by the peak measurement and the benchmarks.
double seconds_per_call(const std::function<void()>& step, double seconds);

// Times repeated size×size×size GEMMs (bf16 weight, f32 activations, the method the engine would use for
// `precision`, the current set_num_threads()) for about `seconds` after one warm-up call; returns GFLOP/s
// (2·size³ per GEMM). Uses ~50 MB at the default size.
double measure_gemm_peak(GemmPrecision precision, double seconds = 0.5, std::int64_t size = 2048);

// The same for the int8 GEMM (u8 activations × s8 weights → s32); returns GOP/s.
double measure_int8_gemm_peak(double seconds = 0.5, std::int64_t size = 2048);

}  // namespace moeslim::kernels
