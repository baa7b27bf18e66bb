// Time spent per kernel category, for benchmarks and `--profile`. Disabled by default: a disabled scope costs
// one relaxed atomic load. Not thread-aware beyond summing: the engine runs its kernels from one thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace moeslim {

enum class ProfileKind {
  kAttentionGemm,  // q/k/v/o projections
  kAttentionCore,  // scores, softmax, context
  kRouterGemm,
  kExpertGemm,     // expert (and dense MLP) gate/up/down
  kNormRope,       // RMSNorms, q/k norms, RoPE
  kMoeDispatch,    // top-k, gather, scatter-add, SiLU
  kLoadWeights,    // mapping and preparing a layer's weights
  kHead,           // final norm + lm_head
  kCount
};

const char* profile_kind_name(ProfileKind kind);

struct ProfileEntry {
  double seconds = 0;
  double flops = 0;
  std::uint64_t calls = 0;
};

class Profiler {
 public:
  static void enable(bool on);
  static bool enabled();
  static void add(ProfileKind kind, double seconds, double flops);
  static ProfileEntry get(ProfileKind kind);
  static void reset();
};

class ProfileScope {
 public:
  explicit ProfileScope(ProfileKind kind, double flops = 0)
      : kind_(kind), flops_(flops), active_(Profiler::enabled()) {
    if (active_) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (active_) {
      Profiler::add(kind_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), flops_);
    }
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  ProfileKind kind_;
  double flops_;
  bool active_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moeslim
