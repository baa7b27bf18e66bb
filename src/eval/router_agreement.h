// Router agreement: whether quantization changed which experts the router picks. Two passes over the same tokens
// (the float and the quantized model, or one layer's float and quantized forward) are recorded, and per MoE
// layer compared token by token:
//   exact         the fraction of real tokens whose set of top-k experts is the same in both passes;
//   mean_overlap  the mean over real tokens of |A ∩ B| / k, the share of the k experts both passes picked.
// The order of the k experts (by router score) and their mixing weights are not compared: a token whose set is
// unchanged runs the same experts, which is what a silent accuracy collapse behind the router would change.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "model/observer.h"

namespace moeslim::eval {

struct RouterAgreement {
  double exact = 0.0;
  double mean_overlap = 0.0;
  std::int64_t tokens = 0;  // the real tokens compared
};

// Every MoE layer's expert sets over one pass: for each real row, in the order the pass routes them, its k
// experts sorted ascending. on_routing is called from the thread that runs the forward, so this needs no lock.
class RoutingRecorder : public model::ForwardObserver {
 public:
  bool wants_linear_input(const model::ModuleId&) const override { return false; }
  bool accepts_concurrent_modules() const override { return true; }
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float* weights, std::int64_t rows,
                  std::int64_t k, const std::uint8_t* real) override;

  // The layers that routed, ascending.
  std::vector<std::int64_t> layers() const;

 private:
  friend RouterAgreement router_agreement(const RoutingRecorder&, const RoutingRecorder&, std::int64_t);
  struct Routes {
    std::int64_t k = 0;
    std::vector<std::int32_t> experts;  // [rows, k]
  };
  std::map<std::int64_t, Routes> layers_;
};

// The agreement of `a` and `b` at `layer`. kInvalidArgument when the two recorded different token counts or k
// (they were not passes over the same tokens), or when either has no routing for the layer.
RouterAgreement router_agreement(const RoutingRecorder& a, const RoutingRecorder& b, std::int64_t layer);

// Token-weighted mean of per-layer agreements (tokens: their sum); all zero for none.
RouterAgreement combined(const std::vector<RouterAgreement>& layers);

}  // namespace moeslim::eval
