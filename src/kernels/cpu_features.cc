#include "kernels/cpu_features.h"

#include <cpuid.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <thread>

#include "core/error.h"

namespace moeslim::kernels {
namespace {

// XCR0: which register states the OS saves on context switch. AMX needs XTILECFG (bit 17) and XTILEDATA (18).
std::uint64_t read_xcr0() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  if ((ecx & (1u << 27)) == 0) return 0;  // OSXSAVE clear: xgetbv would fault
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  __builtin_cpu_init();
  CpuFeatures f;
  // __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512 state.
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  // GCC 12 has no __builtin_cpu_supports names for AMX: CPUID leaf 7 EDX bits 22 (bf16), 24 (tile), 25 (int8).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    const bool os_tiles = (read_xcr0() & (3ull << 17)) == (3ull << 17);
    f.amx_tile = os_tiles && (edx & (1u << 24));
    f.amx_bf16 = f.amx_tile && (edx & (1u << 22));
    f.amx_int8 = f.amx_tile && (edx & (1u << 25));
  }
  return f;
}

bool supports(KernelIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case KernelIsa::kPortable: return true;
    case KernelIsa::kAvx512: return f.avx512f && f.avx512bw && f.avx512vl;
  }
  return false;
}

constexpr int kUnset = -1;
std::atomic<int> g_forced_isa{kUnset};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) break;
      std::string name = line.substr(colon + 1);
      name.erase(0, name.find_first_not_of(" \t"));
      return name;
    }
  }
  return "unknown CPU";
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kPortable: return "portable";
    case KernelIsa::kAvx512: return "avx512";
  }
  return "?";
}

KernelIsa best_kernel_isa() {
  static const KernelIsa best = [] {
    const char* env = std::getenv("MOESLIM_KERNEL_ISA");
    if (env != nullptr && std::string_view(env) == "portable") return KernelIsa::kPortable;
    return supports(KernelIsa::kAvx512) ? KernelIsa::kAvx512 : KernelIsa::kPortable;
  }();
  return best;
}

KernelIsa active_kernel_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced == kUnset ? best_kernel_isa() : static_cast<KernelIsa>(forced);
}

void set_kernel_isa(KernelIsa isa) {
  if (!supports(isa)) {
    throw Error(ErrorCode::kUnsupported, std::string("this CPU cannot run the ") + kernel_isa_name(isa) +
                                             " kernels (needs avx512f, avx512bw, avx512vl)");
  }
  g_forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

std::string onednn_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::all: return "all";
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
  }
  return "unknown";
}

bool onednn_uses_amx() { return dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx; }

std::string describe_cpu() {
  const CpuFeatures& f = cpu_features();
  std::string flags;
  const auto add = [&flags](bool on, const char* name) {
    if (!on) return;
    if (!flags.empty()) flags += ' ';
    flags += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512bf16, "avx512bf16");
  add(f.avx512vnni, "avx512vnni");
  add(f.amx_bf16, "amx-bf16");
  add(f.amx_int8, "amx-int8");
  if (flags.empty()) flags = "baseline x86-64";
  return cpu_model_name() + " | " + std::to_string(std::thread::hardware_concurrency()) + " cpus | " + flags +
         " | kernels: " + kernel_isa_name(active_kernel_isa()) + " | oneDNN: " + onednn_isa_name();
}

}  // namespace moeslim::kernels
