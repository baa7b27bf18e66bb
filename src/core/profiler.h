// Time spent per kernel category, for benchmarks and `--profile`. Disabled by default: a disabled scope costs
// one relaxed atomic load. Scopes on several threads at once (experts run in parallel) add up, so a kind's
// seconds are thread-seconds. Also the running total of GEMM work, float and integer apart, which phases
// difference to know the work each did (pipeline/layer_types.h).
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
  kSearchGemm,     // the α/β search's products (quant/flex_search.h)
  kLoadWeights,    // mapping and preparing a layer's weights
  kHead,           // final norm + lm_head
  kCount
};

const char* profile_kind_name(ProfileKind kind);

// Which peak a GEMM's work is measured against: float (bf16/f32) or integer (int8).
enum class Arithmetic { kFloat, kInteger };

struct FlopTotals {
  double float_flops = 0;
  double integer_ops = 0;
};

// When a phase of a run ran (recorded only while profiling), so a benchmark can tell which phase its memory
// samples belong to.
struct PhaseSpan {
  std::string phase;
  std::chrono::steady_clock::time_point begin, end;
};

struct ProfileEntry {
  double seconds = 0;
  double flops = 0;
  std::uint64_t calls = 0;
};

class Profiler {
 public:
  static void enable(bool on);
  static bool enabled();
  static void add(ProfileKind kind, double seconds, double flops, Arithmetic arithmetic = Arithmetic::kFloat);
  static ProfileEntry get(ProfileKind kind);
  static FlopTotals flop_totals();  // since the last reset; zero while disabled
  static void reset();
};

class ProfileScope {
 public:
  explicit ProfileScope(ProfileKind kind, double flops = 0, Arithmetic arithmetic = Arithmetic::kFloat)
      : kind_(kind), flops_(flops), arithmetic_(arithmetic), active_(Profiler::enabled()) {
    if (active_) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (active_) {
      Profiler::add(kind_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), flops_,
                    arithmetic_);
    }
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  ProfileKind kind_;
  double flops_;
  Arithmetic arithmetic_;
  bool active_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moeslim
