// What this CPU can do, detected at run time, and which code path the hand-written kernels take.
//
// The binary is built for baseline x86-64 (no -march): AVX-512 kernels are compiled with target attributes
// and chosen here at run time. oneDNN (all GEMMs) dispatches its own ISA — AVX-512, VNNI, BF16, AMX — and
// onednn_isa_name() reports what it picked; ONEDNN_MAX_CPU_ISA=AVX512_CORE (say) caps it for experiments.
#pragma once

#include <string>

namespace moeslim::kernels {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512bf16 = false;
  bool avx512vnni = false;
  bool amx_tile = false;  // usable only if the OS enabled the tile state (XCR0 bits 17, 18); checked here
  bool amx_bf16 = false;
  bool amx_int8 = false;
};

// Detected once (CPUID, XGETBV); cheap to call.
const CpuFeatures& cpu_features();

// The code path of moeslim's own element-wise kernels (norms, RoPE, softmax, conversions).
// kAvx512 needs avx512f+bw+vl. Both paths give bit-identical results (same operations in the same order),
// so forcing kPortable only changes speed.
enum class KernelIsa { kPortable, kAvx512 };

const char* kernel_isa_name(KernelIsa isa);  // "portable", "avx512"
// The best path this CPU supports; overridden by MOESLIM_KERNEL_ISA=portable in the environment.
KernelIsa best_kernel_isa();
// The path in use (best_kernel_isa() unless set_kernel_isa was called).
KernelIsa active_kernel_isa();
// Forces a path (tests, benchmarks). Throws kUnsupported if this CPU cannot run it.
void set_kernel_isa(KernelIsa isa);

// oneDNN's effective ISA, e.g. "avx512_core_amx" or "avx512_core_bf16".
std::string onednn_isa_name();
// True when oneDNN will use AMX tiles (its bf16/int8 GEMMs are then several times faster than AVX-512).
bool onednn_uses_amx();

// CPU model name (from /proc/cpuinfo), core count, feature flags, and the chosen paths, on one line:
// "Intel(R) Xeon(R) Processor | 2 cpus | avx2 fma avx512f ... amx-int8 | kernels: avx512 | oneDNN: avx512_core_amx"
std::string describe_cpu();

}  // namespace moeslim::kernels
