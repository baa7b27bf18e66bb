#include "eval/router_agreement.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace moeslim::eval {

void RoutingRecorder::on_routing(std::int64_t layer, const std::int32_t* experts, const float* /*weights*/,
                                 std::int64_t rows, std::int64_t k, const std::uint8_t* real) {
  Routes& r = layers_[layer];
  if (r.k == 0) r.k = k;
  if (r.k != k) throw Error(ErrorCode::kInternal, "the router's k changed within one pass");
  for (std::int64_t row = 0; row < rows; ++row) {
    if (real != nullptr && real[row] == 0) continue;
    const std::size_t at = r.experts.size();
    r.experts.insert(r.experts.end(), experts + row * k, experts + (row + 1) * k);
    std::sort(r.experts.begin() + static_cast<std::ptrdiff_t>(at), r.experts.end());
  }
}

std::vector<std::int64_t> RoutingRecorder::layers() const {
  std::vector<std::int64_t> out;
  for (const auto& [layer, routes] : layers_) out.push_back(layer);
  return out;
}

RouterAgreement router_agreement(const RoutingRecorder& a, const RoutingRecorder& b, std::int64_t layer) {
  const auto ia = a.layers_.find(layer), ib = b.layers_.find(layer);
  if (ia == a.layers_.end() || ib == b.layers_.end()) {
    throw Error(ErrorCode::kInvalidArgument, "no routing recorded for layer " + std::to_string(layer));
  }
  const auto& ra = ia->second;
  const auto& rb = ib->second;
  if (ra.k != rb.k || ra.experts.size() != rb.experts.size()) {
    throw Error(ErrorCode::kInvalidArgument,
                "layer " + std::to_string(layer) + ": the two passes routed different tokens (" +
                    std::to_string(ra.experts.size()) + " and " + std::to_string(rb.experts.size()) + " expert slots)");
  }
  RouterAgreement out;
  const std::size_t k = static_cast<std::size_t>(ra.k);
  if (k == 0) return out;
  out.tokens = static_cast<std::int64_t>(ra.experts.size() / k);
  std::int64_t same = 0, shared = 0;
  for (std::size_t t = 0; t < ra.experts.size(); t += k) {
    // Both sets are sorted: count the common experts by merging.
    std::size_t i = t, j = t, common = 0;
    while (i < t + k && j < t + k) {
      if (ra.experts[i] == rb.experts[j]) {
        ++common, ++i, ++j;
      } else if (ra.experts[i] < rb.experts[j]) {
        ++i;
      } else {
        ++j;
      }
    }
    same += common == k ? 1 : 0;
    shared += static_cast<std::int64_t>(common);
  }
  if (out.tokens > 0) {
    out.exact = static_cast<double>(same) / static_cast<double>(out.tokens);
    out.mean_overlap = static_cast<double>(shared) / static_cast<double>(out.tokens * ra.k);
  }
  return out;
}

RouterAgreement combined(const std::vector<RouterAgreement>& layers) {
  RouterAgreement out;
  double exact = 0.0, overlap = 0.0;
  for (const RouterAgreement& l : layers) {
    out.tokens += l.tokens;
    exact += l.exact * static_cast<double>(l.tokens);
    overlap += l.mean_overlap * static_cast<double>(l.tokens);
  }
  if (out.tokens > 0) {
    out.exact = exact / static_cast<double>(out.tokens);
    out.mean_overlap = overlap / static_cast<double>(out.tokens);
  }
  return out;
}

}  // namespace moeslim::eval
