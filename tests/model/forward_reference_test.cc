// The float forward against the independent PyTorch reference (float32 arithmetic on the bf16 weights):
// logits of every prompt, the residual stream after every layer, and a left-padded batch.
#include <gtest/gtest.h>

#include <cmath>

#include "io/checkpoint.h"
#include "io/json_file.h"
#include "io/safetensors_reader.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "common/test_paths.h"

namespace moeslim::model {
namespace {

double relative_l2(const float* got, const float* want, std::size_t n) {
  double diff = 0;
  double norm = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

struct ReferenceCase {
  std::string model;
};

class ForwardReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_dir_ = testing::source_dir() / "models" / GetParam();
    ref_dir_ = testing::test_data_dir() / "reference" / GetParam();
    config_ = ModelConfig::load(model_dir_);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(model_dir_));
    reference_ = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(ref_dir_ / "reference.safetensors"));
    prompts_ = io::read_json_file(ref_dir_ / "reference.json")["prompts"];
  }

  Tensor logits_of(const TokenSet& tokens, const ModelConfig& config, const RunOptions& options = {}) {
    CheckpointLayerSource source(*checkpoint_, config, FloatPrecision::kF32);
    const Tensor hidden = run_layers(source, tokens, options);
    return compute_logits(config, source.final_norm(), *source.lm_head(), hidden, 0, tokens.layout.rows());
  }

  std::filesystem::path model_dir_, ref_dir_;
  ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  std::unique_ptr<io::SafetensorsFile> reference_;
  nlohmann::json prompts_;
};

TEST_P(ForwardReference, LogitsOfEveryPromptAndHiddenAfterEveryLayer) {
  ASSERT_GE(prompts_.size(), 6u);
  for (const auto& p : prompts_) {
    const int index = p["index"].get<int>();
    TokenSet tokens;
    tokens.ids = p["ids"].get<std::vector<std::int32_t>>();
    tokens.layout.add_sequence(static_cast<std::int64_t>(tokens.ids.size()));
    RunOptions options;
    options.after_layer = [&](std::int64_t layer, const Tensor& hidden) {
      const std::string name = "prompt." + std::to_string(index) + ".hidden.after_layer." + std::to_string(layer);
      if (!reference_->contains(name)) return;
      const Tensor want = reference_->tensor(name);
      ASSERT_EQ(want.shape(), hidden.shape()) << name;
      EXPECT_LE(relative_l2(hidden.data<float>(), want.data<float>(), want.numel()), 1e-4) << name;
    };
    const Tensor logits = logits_of(tokens, config_, options);
    const Tensor want = reference_->tensor("prompt." + std::to_string(index) + ".logits");
    ASSERT_EQ(want.shape(), logits.shape());
    const double err = relative_l2(logits.data<float>(), want.data<float>(), want.numel());
    EXPECT_LE(err, 1e-4) << "prompt " << index;
  }
}

TEST_P(ForwardReference, LeftPaddedBatchEqualsUnpaddedPromptsAtRealPositions) {
  const Tensor ids = reference_->tensor("left_padded_batch.input_ids");
  const Tensor mask = reference_->tensor("left_padded_batch.attention_mask");
  const Tensor want = reference_->tensor("left_padded_batch.logits");
  const std::int64_t B = ids.dim(0);
  const std::int64_t T = ids.dim(1);
  const Tensor ids32 = ids.to_f32();
  const Tensor mask32 = mask.to_f32();
  TokenSet tokens;
  for (std::int64_t b = 0; b < B; ++b) {
    std::vector<std::uint8_t> m(static_cast<std::size_t>(T));
    for (std::int64_t t = 0; t < T; ++t) {
      tokens.ids.push_back(static_cast<std::int32_t>(ids32.data<float>()[b * T + t]));
      m[static_cast<std::size_t>(t)] = mask32.data<float>()[b * T + t] != 0 ? 1 : 0;
    }
    tokens.layout.add_sequence(T, m.data());
  }
  ASSERT_TRUE(tokens.layout.has_padding());
  const Tensor logits = logits_of(tokens, config_);
  const std::int64_t V = config_.vocab_size;
  for (std::int64_t b = 0; b < B; ++b) {
    // Compare every real position of row b with the reference, and with the unpadded prompt b.
    std::vector<float> got, expect;
    for (std::int64_t t = 0; t < T; ++t) {
      if (!tokens.layout.real[static_cast<std::size_t>(b * T + t)]) continue;
      got.insert(got.end(), logits.data<float>() + (b * T + t) * V, logits.data<float>() + (b * T + t + 1) * V);
      expect.insert(expect.end(), want.data<float>() + (b * T + t) * V, want.data<float>() + (b * T + t + 1) * V);
    }
    EXPECT_LE(relative_l2(got.data(), expect.data(), got.size()), 1e-4) << "row " << b;
    const Tensor unpadded = reference_->tensor("prompt." + std::to_string(b) + ".logits");
    ASSERT_EQ(unpadded.numel(), got.size());
    EXPECT_LE(relative_l2(got.data(), unpadded.data<float>(), got.size()), 1e-4) << "row " << b << " vs prompt";
  }
}

TEST_P(ForwardReference, LayerCountStopsAfterTheFirstNLayers) {
  ModelConfig two = config_;
  two.limit_layers(2);
  const auto& p = prompts_[0];
  TokenSet tokens;
  tokens.ids = p["ids"].get<std::vector<std::int32_t>>();
  tokens.layout.add_sequence(static_cast<std::int64_t>(tokens.ids.size()));
  CheckpointLayerSource source(*checkpoint_, two, FloatPrecision::kF32);
  std::int64_t layers_run = 0;
  RunOptions options;
  options.on_layer_done = [&](std::int64_t done, std::int64_t) { layers_run = done; };
  const Tensor hidden = run_layers(source, tokens, options);
  EXPECT_EQ(layers_run, 2);
  const Tensor want = reference_->tensor("prompt.0.hidden.after_layer.1");
  EXPECT_LE(relative_l2(hidden.data<float>(), want.data<float>(), want.numel()), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(SharedTinyModels, ForwardReference,
                         ::testing::ValuesIn(testing::kSharedTinyModels),
                         [](const auto& info) { return testing::model_param_name(info.param); });

}  // namespace
}  // namespace moeslim::model
