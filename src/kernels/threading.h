// How many threads the kernels (oneDNN GEMMs and moeslim's own loops) use.
//
// The library's default is 1; the commands set every usable CPU (core/cpu_budget.h) unless --threads says
// otherwise. Output never depends on the count: every parallel loop splits work whose results do not depend on
// the split (rows, experts, blocks), and every reduction is summed in a fixed order.
//
// OpenMP's wait policy is the user's to choose (libgomp reads OMP_WAIT_POLICY once, when it loads). libgomp's
// default lets idle threads spin a while between parallel regions. On a machine the run has to itself that is
// the faster choice: a W8A8 run on 30B shapes at 2 threads took 49.7 s per layer by default against 58.0 s with
// OMP_WAIT_POLICY=passive (bench/quant_bench, 2-vCPU AMD EPYC). Where another process is busy, or the vCPUs are
// SMT siblings sharing one core's FP units, spinning threads can collapse small GEMMs (64x768x2048: 8.0 ms with
// 2 spinning threads against 0.57 ms with 1); passive waiting never collapses. The README says when to set it.
#pragma once

namespace moeslim::kernels {

// Sets the thread count for all later kernel calls, from any thread. Throws kInvalidArgument if n < 1.
void set_num_threads(int n);
int num_threads();

// Applies the setting to the calling thread's OpenMP state (omp_set_num_threads is per thread).
// Every kernel entry point calls this; it costs one comparison when nothing changed.
void apply_num_threads();

}  // namespace moeslim::kernels
