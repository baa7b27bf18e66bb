// How many threads the kernels (oneDNN GEMMs and moeslim's own loops) use.
//
// The library's default is 1; the commands set every usable CPU (core/cpu_budget.h) unless --threads says
// otherwise. Output never depends on the count: every parallel loop splits work whose results do not depend on
// the split (rows, experts, blocks), and every reduction is summed in a fixed order.
//
// OpenMP's wait policy matters more than the count. With libgomp's default *active* waiting (threads spin
// between parallel regions), when the vCPUs are SMT siblings sharing one core's FP units, or when another
// process is busy, small GEMMs collapse (64x768x2048: 8.0 ms with 2 spinning threads against 0.57 ms with 1;
// bf16 32 against 705 GFLOP/s beside a busy process). OMP_WAIT_POLICY=passive costs a little at small M and
// never collapses. libgomp reads it once, when it loads, so the program cannot set it for itself: the moeslim
// executable restarts itself with it when it is unset (cli/main.cc). bench/gemm_bench prints 1 vs 2 threads.
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
