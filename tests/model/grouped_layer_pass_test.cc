// The grouped pass (a layer over every chunk, its experts a group at a time) against DecoderLayer::forward
// chunk by chunk: the same bits for any group size and thread count, the hooks in order, every module's inputs
// in the same order, and only the loaded group's experts used.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/scoped_threads.h"
#include "common/test_paths.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/grouped_layer_pass.h"
#include "model/layer_loader.h"

namespace moeslim::model {
namespace {

constexpr std::int64_t kLayer = 1;
constexpr std::int64_t kSequencesPerChunk = 2;

// Records, per module, the row count of every input it sees (one observer call per chunk and module).
class InputLog final : public ForwardObserver {
 public:
  void on_linear_input(const ModuleId& module, const float*, std::int64_t rows, std::int64_t,
                       const std::uint8_t*) override {
    rows_[module].push_back(rows);
  }
  void on_routing(std::int64_t, const std::int32_t* experts, const float*, std::int64_t rows, std::int64_t k,
                  const std::uint8_t*) override {
    routing_.insert(routing_.end(), experts, experts + rows * k);
  }
  std::map<ModuleId, std::vector<std::int64_t>> rows_;
  std::vector<std::int32_t> routing_;
};

class GroupedLayerPass : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path dir = testing::bundled_model_dir();
    config_ = ModelConfig::load(dir);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(dir));
    tensors_ = read_layer_tensors(*checkpoint_, config_, kLayer);
    // Five sequences, one left-padded, of different lengths: three chunks of at most two sequences.
    const std::uint8_t padded[] = {0, 0, 1, 1, 1, 1, 1};
    layout_.add_sequence(9);
    layout_.add_sequence(7, padded);
    layout_.add_sequence(4);
    layout_.add_sequence(12);
    layout_.add_sequence(5);
    std::vector<std::int32_t> ids;
    for (std::int64_t r = 0; r < layout_.rows(); ++r) ids.push_back(static_cast<std::int32_t>((r * 37 + 11) % 1000));
    input_ = embed(checkpoint_->tensor("model.embed_tokens.weight"), ids);
  }

  // DecoderLayer::forward chunk by chunk.
  Tensor chunked(InputLog* log) const {
    Tensor hidden = input_.clone();
    const DecoderLayer layer = build_float_layer(config_, kLayer, tensors_, FloatPrecision::kF32);
    run_layer_chunked(config_, layer, hidden, layout_, std::numeric_limits<std::int64_t>::max(), kSequencesPerChunk,
                      log);
    return hidden;
  }

  ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  LayerTensors tensors_;
  TokenLayout layout_;
  Tensor input_;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

TEST_F(GroupedLayerPass, GivesTheChunkedForwardsBitsForAnyGroupSizeAndThreadCount) {
  ASSERT_TRUE(config_.is_moe_layer(kLayer));
  const Tensor expected = chunked(nullptr);
  const LinearFactory make = float_linear_factory(FloatPrecision::kF32);
  for (const int threads : {1, 3}) {
    const testing::ScopedThreads scoped(threads);
    for (const std::int64_t per_group : {std::int64_t{1}, std::int64_t{5}, config_.num_experts}) {
      DecoderLayer layer = build_layer_without_experts(config_, kLayer, tensors_, make);
      ExpertGroupHooks hooks;
      hooks.load_experts = [&](ExpertRange g, const ExpertGroupInputs&) {
        for (std::int64_t e = g.first; e < g.last; ++e) {
          layer.mlp.experts[static_cast<std::size_t>(e)] = build_expert(kLayer, e, tensors_, make);
        }
      };
      hooks.unload_experts = [&](ExpertRange g) {
        for (std::int64_t e = g.first; e < g.last; ++e) layer.mlp.experts[static_cast<std::size_t>(e)] = {};
      };
      Tensor hidden = input_.clone();
      run_layer_grouped(config_, layer, hidden, layout_, kSequencesPerChunk,
                        expert_groups(config_.num_experts, per_group), nullptr, hooks);
      EXPECT_TRUE(same_bits(hidden, expected)) << threads << " threads, " << per_group << " experts per group";
    }
  }
}

TEST_F(GroupedLayerPass, HooksComeInOrderAndObserversSeeEachModuleAsInTheChunkedForward) {
  InputLog chunked_log;
  chunked(&chunked_log);

  DecoderLayer layer = build_float_layer(config_, kLayer, tensors_, FloatPrecision::kF32);  // experts prebuilt
  std::vector<std::string> events;
  ExpertGroupHooks hooks;
  hooks.after_attention = [&] { events.push_back("attention"); };
  hooks.load_experts = [&](ExpertRange g, const ExpertGroupInputs&) {
    events.push_back("load " + std::to_string(g.first) + "-" + std::to_string(g.last));
  };
  hooks.unload_experts = [&](ExpertRange g) { events.push_back("unload " + std::to_string(g.first)); };
  InputLog grouped_log;
  Tensor hidden = input_.clone();
  run_layer_grouped(config_, layer, hidden, layout_, kSequencesPerChunk, expert_groups(config_.num_experts, 3),
                    &grouped_log, hooks);

  std::vector<std::string> expected = {"attention"};
  for (std::int64_t first = 0; first < config_.num_experts; first += 3) {
    expected.push_back("load " + std::to_string(first) + "-" + std::to_string(std::min(first + 3, config_.num_experts)));
    expected.push_back("unload " + std::to_string(first));
  }
  EXPECT_EQ(events, expected);
  EXPECT_EQ(grouped_log.rows_, chunked_log.rows_);
  EXPECT_EQ(grouped_log.routing_, chunked_log.routing_);
}

// Records every expert's gate_proj input rows (values and pad flags), in the order the pass feeds them.
class ExpertInputLog final : public ForwardObserver {
 public:
  bool wants_linear_input(const ModuleId& module) const override {
    return module.is_expert() && module.role == ModuleRole::kGateProj;
  }
  void on_linear_input(const ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t* real) override {
    std::vector<float>& v = values[module.expert];
    v.insert(v.end(), x, x + rows * cols);
    std::vector<std::uint8_t>& r = real_flags[module.expert];
    r.insert(r.end(), real, real + rows);
  }
  std::map<std::int64_t, std::vector<float>> values;
  std::map<std::int64_t, std::vector<std::uint8_t>> real_flags;
};

// What a load hook is shown of its group's inputs is what the group's experts then see, row for row.
TEST_F(GroupedLayerPass, GroupInputsAreTheRowsEachExpertThenSees) {
  DecoderLayer layer = build_float_layer(config_, kLayer, tensors_, FloatPrecision::kF32);
  std::map<std::int64_t, std::vector<float>> shown;
  std::map<std::int64_t, std::vector<std::uint8_t>> shown_real;
  ExpertGroupHooks hooks;
  hooks.load_experts = [&](ExpertRange g, const ExpertGroupInputs& inputs) {
    for (std::int64_t e = g.first; e < g.last; ++e) {
      std::vector<std::uint8_t> real;
      const Tensor rows = inputs.gather(e, &real);
      ASSERT_EQ(rows.dim(0), inputs.rows(e));
      if (rows.dim(0) == 0) continue;
      shown[e].assign(rows.data<float>(), rows.data<float>() + rows.numel());
      shown_real[e] = real;
    }
  };
  ExpertInputLog seen;
  Tensor hidden = input_.clone();
  run_layer_grouped(config_, layer, hidden, layout_, kSequencesPerChunk, expert_groups(config_.num_experts, 3), &seen,
                    hooks);
  EXPECT_EQ(shown.size(), seen.values.size());
  for (const auto& [e, values] : seen.values) {
    EXPECT_TRUE(shown[e] == values) << "expert " << e;
    EXPECT_EQ(shown_real[e], seen.real_flags[e]) << "expert " << e;
  }
  std::int64_t pads = 0;
  for (const auto& [e, flags] : shown_real) pads += std::count(flags.begin(), flags.end(), 0);
  EXPECT_EQ(pads, 2 * config_.num_experts_per_tok) << "the padded prompt's two pads, each routed to k experts";
}

TEST_F(GroupedLayerPass, AnExpertOutsideTheLoadedGroupsIsAnInternalError) {
  DecoderLayer layer = build_layer_without_experts(config_, kLayer, tensors_, float_linear_factory(FloatPrecision::kF32));
  Tensor hidden = input_.clone();
  try {
    run_layer_grouped(config_, layer, hidden, layout_, kSequencesPerChunk, expert_groups(config_.num_experts, 4),
                      nullptr, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
    EXPECT_NE(std::string(e.what()).find("was not loaded"), std::string::npos) << e.what();
  }
  const std::vector<ExpertRange> gap = {{0, 2}, {3, config_.num_experts}};
  EXPECT_THROW(run_layer_grouped(config_, layer, hidden, layout_, kSequencesPerChunk, gap, nullptr, {}), Error);
}

}  // namespace
}  // namespace moeslim::model
