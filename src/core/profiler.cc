#include "core/profiler.h"

#include <atomic>
#include <mutex>

namespace moeslim {
namespace {
std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::array<ProfileEntry, static_cast<std::size_t>(ProfileKind::kCount)> g_entries;
FlopTotals g_totals;
}  // namespace

const char* profile_kind_name(ProfileKind kind) {
  switch (kind) {
    case ProfileKind::kAttentionGemm: return "attention GEMMs (q/k/v/o)";
    case ProfileKind::kAttentionCore: return "attention core";
    case ProfileKind::kRouterGemm: return "router GEMM";
    case ProfileKind::kExpertGemm: return "expert GEMMs";
    case ProfileKind::kNormRope: return "norms + RoPE";
    case ProfileKind::kMoeDispatch: return "MoE dispatch";
    case ProfileKind::kSearchGemm: return "α/β search GEMMs";
    case ProfileKind::kLoadWeights: return "weight load/prepare";
    case ProfileKind::kHead: return "final norm + lm_head";
    case ProfileKind::kCount: break;
  }
  return "?";
}

void Profiler::enable(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool Profiler::enabled() { return g_enabled.load(std::memory_order_relaxed); }

void Profiler::add(ProfileKind kind, double seconds, double flops, Arithmetic arithmetic) {
  std::lock_guard<std::mutex> lock(g_mutex);
  ProfileEntry& e = g_entries[static_cast<std::size_t>(kind)];
  e.seconds += seconds;
  e.flops += flops;
  ++e.calls;
  (arithmetic == Arithmetic::kInteger ? g_totals.integer_ops : g_totals.float_flops) += flops;
}

FlopTotals Profiler::flop_totals() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_totals;
}

ProfileEntry Profiler::get(ProfileKind kind) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_entries[static_cast<std::size_t>(kind)];
}

void Profiler::reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_entries.fill({});
  g_totals = {};
}

}  // namespace moeslim
