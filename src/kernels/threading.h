// How many threads the kernels (oneDNN GEMMs and moeslim's own loops) use.
//
// Default: 1. Whether a second thread pays depends on the machine and on what else runs:
//  * where the 2 vCPUs are SMT siblings sharing one core's FP units (the Zen 5 development VM), a second thread
//    buys little, and with OpenMP's default *active* waiting (threads spin between parallel regions) small
//    GEMMs got 14x slower (64x768x2048: 8.0 ms with 2 spinning threads against 0.57 ms with 1);
//  * on the Sapphire Rapids VM (2 real cores) 2 threads give 1.8–2x on an idle machine, but when another
//    process holds the second core, 2 spinning threads collapse (64x768x2048 bf16: 32 against 705 GFLOP/s).
// So: keep 1 unless the machine is dedicated; with more, start the process with
//   OMP_WAIT_POLICY=passive
// (libgomp reads it once, when the library loads, so it cannot be set from inside the program), which costs
// a little at small M but never collapses (measured 2T ≈ 1T under contention). bench/gemm_bench prints 1 vs
// 2 threads side by side.
#pragma once

namespace moeslim::kernels {

// Sets the thread count for all later kernel calls, from any thread. Throws kInvalidArgument if n < 1.
void set_num_threads(int n);
int num_threads();

// Applies the setting to the calling thread's OpenMP state (omp_set_num_threads is per thread).
// Every kernel entry point calls this; it costs one comparison when nothing changed.
void apply_num_threads();

// True when OMP_WAIT_POLICY=passive is set in the environment (the CLI may warn when threads > 1 without it).
bool omp_wait_policy_is_passive();

}  // namespace moeslim::kernels
