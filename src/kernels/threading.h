// How many threads the kernels (oneDNN GEMMs and moeslim's own loops) use.
//
// Default: 1. On small VMs the vCPUs are often SMT siblings sharing one core's FP units; there a second
// OpenMP thread buys little, and with OpenMP's default *active* waiting (threads spin between parallel
// regions) it can make small GEMMs an order of magnitude slower (measured: 64x768x2048 took 8.0 ms with
// 2 spinning threads against 0.57 ms with 1). If you use more than one thread, start the process with
//   OMP_WAIT_POLICY=passive
// (libgomp reads it once, when the library loads, so it cannot be set from inside the program), and measure:
// bench/gemm_bench prints 1 vs 2 threads side by side.
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
