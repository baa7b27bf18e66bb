// Router agreement (eval/router_agreement.h): two recorded passes compared token by token, worked by hand (set
// equality whatever the order of the k slots, the overlap share, pads skipped, several calls per layer), the
// token-weighted combination, and refusals for passes over different tokens.
#include "eval/router_agreement.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/error.h"

namespace moeslim::eval {
namespace {

void route(RoutingRecorder& r, std::int64_t layer, const std::vector<std::int32_t>& experts, std::int64_t k,
           const std::vector<std::uint8_t>& real = {}) {
  r.on_routing(layer, experts.data(), nullptr, static_cast<std::int64_t>(experts.size()) / k, k,
               real.empty() ? nullptr : real.data());
}

TEST(RouterAgreement, SetsNotSlotOrderOverlapShareAndPadsSkipped) {
  RoutingRecorder a, b;
  // k = 2; five rows, the fourth a pad (its experts differ, but it does not count).
  route(a, 3, {0, 1, 2, 3, 4, 5, 6, 7, 1, 2}, 2, {1, 1, 1, 0, 1});
  route(b, 3, {1, 0, 2, 5, 6, 7, 0, 1, 3, 4}, 2, {1, 1, 1, 0, 1});
  // Tokens: {0,1}={1,0} same; {2,3} vs {2,5} one shared; {4,5} vs {6,7} none; {1,2} vs {3,4} none.
  const RouterAgreement r = router_agreement(a, b, 3);
  EXPECT_EQ(r.tokens, 4);
  EXPECT_DOUBLE_EQ(r.exact, 1.0 / 4.0);
  EXPECT_DOUBLE_EQ(r.mean_overlap, (2.0 + 1.0 + 0.0 + 0.0) / (4.0 * 2.0));
  EXPECT_EQ(a.layers(), (std::vector<std::int64_t>{3}));
}

TEST(RouterAgreement, ChunksOfOnePassAppendInOrderAndLayersAreSeparate) {
  RoutingRecorder a, b;
  route(a, 0, {0, 1, 2}, 3);
  route(a, 0, {3, 4, 5}, 3);
  route(a, 1, {0, 1, 2}, 3);
  route(b, 0, {2, 1, 0, 3, 4, 6}, 3);  // the same two tokens in one call
  route(b, 1, {0, 1, 2}, 3);
  const RouterAgreement l0 = router_agreement(a, b, 0);
  EXPECT_DOUBLE_EQ(l0.exact, 0.5);
  EXPECT_DOUBLE_EQ(l0.mean_overlap, 5.0 / 6.0);
  const RouterAgreement l1 = router_agreement(a, b, 1);
  EXPECT_DOUBLE_EQ(l1.exact, 1.0);
  const RouterAgreement all = combined({l0, l1});
  EXPECT_EQ(all.tokens, 3);
  EXPECT_DOUBLE_EQ(all.exact, (0.5 * 2 + 1.0) / 3.0);
  EXPECT_DOUBLE_EQ(all.mean_overlap, (5.0 / 6.0 * 2 + 1.0) / 3.0);
  EXPECT_EQ(combined({}).tokens, 0);
}

TEST(RouterAgreement, PassesOverDifferentTokensAreRefused) {
  RoutingRecorder a, b, c;
  route(a, 0, {0, 1, 2, 3}, 2);
  route(b, 0, {0, 1}, 2);
  route(c, 1, {0, 1, 2, 3}, 2);
  EXPECT_THROW(router_agreement(a, b, 0), Error);
  EXPECT_THROW(router_agreement(a, c, 0), Error) << "c never routed layer 0";
  EXPECT_THROW(route(a, 0, {0, 1, 2}, 3), Error) << "k changed within one pass";
}

}  // namespace
}  // namespace moeslim::eval
