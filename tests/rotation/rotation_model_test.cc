// --rot on the bundled tiny Qwen3-MoE checkpoints: the rotated model (every layer folded and rotated, the
// embedding rotated, lm_head folded and rotated, folded norms = 1) must compute the same logits as the original
// up to the bf16 roundings of the rotated weights (§5.3), its residual stream must be the original's times R1,
// and the q/k projections' outputs must be unchanged.
//
// The tiny models have hidden 256 (R1: 8 blocks, 6 rotated) and head_dim 64, not Qwen3's 128: R2 is exercised
// in create_rot's general form (B·P·B over two 32-blocks, shift 16); the 128 case is checked as a matrix in
// hadamard_test.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "common/test_paths.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/json_file.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "model/linear.h"
#include "quant/rotation.h"

namespace moeslim::quant {
namespace {

double relative_l2(const float* got, const float* want, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

// rows × cols activations times R1 (rows of x are residual-stream vectors).
std::vector<float> times_r1(const Rotation& rot, const float* x, std::int64_t rows, std::int64_t cols) {
  std::vector<float> y(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r) multiply_row(rot.r1, x + r * cols, cols, y.data() + r * cols);
  return y;
}

// x [rows, in] · Wᵀ (W [out, in], any float dtype), in double.
std::vector<float> linear(const std::vector<float>& x, std::int64_t rows, const Tensor& w) {
  const Tensor wf = w.to_f32();
  const std::int64_t out = w.dim(0), in = w.dim(1);
  std::vector<float> y(static_cast<std::size_t>(rows * out));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (std::int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * in + i]) * wf.data<float>()[o * in + i];
      y[r * out + o] = static_cast<float>(acc);
    }
  }
  return y;
}

// Records the inputs of every layer's q_proj (shared with k_proj) and router.
class InputRecorder : public model::ForwardObserver {
 public:
  bool wants_linear_input(const model::ModuleId& module) const override {
    return module.role == model::ModuleRole::kQProj || module.role == model::ModuleRole::kRouter;
  }
  void on_linear_input(const model::ModuleId& module, const float* x, std::int64_t rows, std::int64_t cols,
                       const std::uint8_t*) override {
    auto& v = inputs[model::hf_module_name(module)];
    v.insert(v.end(), x, x + rows * cols);
  }
  void on_routing(std::int64_t layer, const std::int32_t* experts, const float*, std::int64_t rows, std::int64_t k,
                  const std::uint8_t*) override {
    auto& v = routing[layer];
    v.insert(v.end(), experts, experts + rows * k);
  }
  std::map<std::string, std::vector<float>> inputs;
  std::map<std::int64_t, std::vector<std::int32_t>> routing;  // per layer: rows × top-k expert ids
};

// The checkpoint with --rot applied as the layers stream by. With `in_f32` every tensor is widened to float32
// first, so the transforms round nothing and the rotated model must match to float32 accuracy.
class RotatedLayerSource : public model::LayerSource {
 public:
  RotatedLayerSource(const io::Checkpoint& checkpoint, model::ModelConfig config, bool in_f32 = false)
      : checkpoint_(checkpoint), config_(std::move(config)), rotation_(Rotation::for_config(config_)),
        in_f32_(in_f32) {}
  const model::ModelConfig& config() const override { return config_; }
  model::DecoderLayer load_layer(std::int64_t layer) override {
    return model::build_float_layer(config_, layer, rotated_layer(layer), model::FloatPrecision::kF32);
  }
  model::LayerTensors rotated_layer(std::int64_t layer) const {
    model::LayerTensors t = model::read_layer_tensors(checkpoint_, config_, layer);
    if (in_f32_) {
      for (auto& [name, tensor] : t) tensor = tensor.to_f32();
    }
    rotate_layer(config_, layer, t, rotation_);
    return t;
  }
  Tensor embedding() override { return rotate_embedding(read("model.embed_tokens.weight"), rotation_); }
  Tensor final_norm() override { return unit_norm_weight(read("model.norm.weight")).to_f32(); }
  std::unique_ptr<model::Linear> lm_head() override {
    return model::make_float_linear(
        fold_and_rotate_lm_head(read("lm_head.weight"), read("model.norm.weight"), rotation_), Tensor(),
        model::FloatPrecision::kF32);
  }
  const Rotation& rotation() const { return rotation_; }

 private:
  Tensor read(const std::string& name) const {
    const Tensor t = checkpoint_.tensor(name);
    return in_f32_ ? t.to_f32() : t;
  }

  const io::Checkpoint& checkpoint_;
  model::ModelConfig config_;
  Rotation rotation_;
  bool in_f32_;
};

struct RunResult {
  Tensor logits;
  std::vector<Tensor> hidden_after;  // per layer
  InputRecorder inputs;
};

class RotatedTinyModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto dir = testing::source_dir() / "models" / GetParam();
    config_ = model::ModelConfig::load(dir);
    checkpoint_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(dir));
    const auto prompts =
        io::read_json_file(testing::test_data_dir() / "reference" / GetParam() / "reference.json")["prompts"];
    for (const auto& p : prompts) {
      const auto ids = p["ids"].get<std::vector<std::int32_t>>();
      tokens_.ids.insert(tokens_.ids.end(), ids.begin(), ids.end());
      tokens_.layout.add_sequence(static_cast<std::int64_t>(ids.size()));
    }
  }

  void run(model::LayerSource& source, RunResult& out) {
    model::RunOptions options;
    options.observer = &out.inputs;
    options.after_layer = [&](std::int64_t, const Tensor& h) { out.hidden_after.push_back(h.clone()); };
    const Tensor hidden = model::run_layers(source, tokens_, options);
    out.logits = model::compute_logits(config_, source.final_norm(), *source.lm_head(), hidden, 0,
                                       tokens_.layout.rows());
  }

  model::ModelConfig config_;
  std::unique_ptr<io::Checkpoint> checkpoint_;
  model::TokenSet tokens_;
};

TEST_P(RotatedTinyModel, ComputesTheSameFunction) {
  // What the fixture exercises: R1 on hidden 256 (a multiple of 32, ≥ 64); head_dim 64, so R2 in its general
  // B·P·B form rather than Qwen3's 128.
  ASSERT_EQ(config_.hidden_size % 32, 0);
  std::printf("%s: hidden_size %lld, head_dim %lld (R2 at head_dim 128 is checked only as a matrix)\n",
              GetParam().c_str(), static_cast<long long>(config_.hidden_size),
              static_cast<long long>(config_.head_dim));

  model::CheckpointLayerSource original_source(*checkpoint_, config_, model::FloatPrecision::kF32);
  RotatedLayerSource rotated_source(*checkpoint_, config_);
  RunResult original, rotated;
  run(original_source, original);
  run(rotated_source, rotated);
  const Rotation& rot = rotated_source.rotation();
  const std::int64_t rows = tokens_.layout.rows(), H = config_.hidden_size;

  // Logits: each rotated weight carries one to three bf16 roundings (relative error ≤ 2^-9 each, ~1e-3 RMS and
  // uncorrelated), which reach the logits through 4 layers as a few 1e-3; 2e-2 leaves a wide margin while a
  // wrong sign, block or transpose anywhere gives O(1).
  const double logits_error = relative_l2(rotated.logits.data<float>(), original.logits.data<float>(),
                                          original.logits.numel());
  std::printf("%s: logits relative L2, rotated vs original: %.3g\n", GetParam().c_str(), logits_error);
  EXPECT_LT(logits_error, 2e-2);
  std::int64_t same_argmax = 0;
  const std::int64_t V = config_.vocab_size;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* a = original.logits.data<float>() + r * V;
    const float* b = rotated.logits.data<float>() + r * V;
    same_argmax += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  std::printf("%s: same top-1 token at %lld of %lld positions\n", GetParam().c_str(),
              static_cast<long long>(same_argmax), static_cast<long long>(rows));
  EXPECT_GE(same_argmax, rows * 9 / 10);

  // The residual stream after every layer is the original's times R1, up to the roundings. Their error is
  // measured against the largest residual stream of the run: on the massive-activation model the last layer
  // subtracts the spikes (values ~1000) it carried, and what the roundings left of them is large next to the
  // small stream that remains, though not next to the stream they were made in.
  ASSERT_EQ(rotated.hidden_after.size(), static_cast<std::size_t>(config_.num_hidden_layers));
  double largest = 0;  // the largest ‖residual stream‖ over the layers
  for (const Tensor& h : original.hidden_after) {
    double sq = 0;
    for (std::size_t i = 0; i < h.numel(); ++i) sq += static_cast<double>(h.data<float>()[i]) * h.data<float>()[i];
    largest = std::max(largest, std::sqrt(sq));
  }
  for (std::int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const Tensor& h = original.hidden_after[static_cast<std::size_t>(l)];
    const std::vector<float> want = times_r1(rot, h.data<float>(), rows, H);
    const float* got = rotated.hidden_after[static_cast<std::size_t>(l)].data<float>();
    double sq = 0;
    for (std::size_t i = 0; i < want.size(); ++i) sq += (static_cast<double>(got[i]) - want[i]) * (got[i] - want[i]);
    const double err = std::sqrt(sq) / largest;
    std::printf("%s: layer %lld residual stream vs original·R1: %.3g (relative to its own: %.3g)\n",
                GetParam().c_str(), static_cast<long long>(l), err, relative_l2(got, want.data(), want.size()));
    EXPECT_LT(err, 2e-2) << "layer " << l;
  }

  // Router logits are unchanged up to the roundings, so the experts chosen are the same except at near-ties;
  // a changed choice moves its token's residual by a whole expert output, which is most of the residual error.
  std::int64_t same = 0, total = 0;
  for (const auto& [layer, experts] : original.inputs.routing) {
    const std::vector<std::int32_t>& other = rotated.inputs.routing.at(layer);
    ASSERT_EQ(other.size(), experts.size());
    const auto k = static_cast<std::size_t>(config_.num_experts_per_tok);
    for (std::size_t r = 0; r < experts.size(); r += k, ++total) {
      same += std::equal(experts.begin() + r, experts.begin() + r + k, other.begin() + r);
    }
  }
  std::printf("%s: same experts chosen for %lld of %lld (token, layer) pairs\n", GetParam().c_str(),
              static_cast<long long>(same), static_cast<long long>(total));
  EXPECT_GE(same, total * 9 / 10);
}

// Without roundings the rotation is an exact identity of the function: only float32 arithmetic differs.
TEST_P(RotatedTinyModel, RotatedInFloat32ComputesTheSameLogitsToFloatAccuracy) {
  model::CheckpointLayerSource original_source(*checkpoint_, config_, model::FloatPrecision::kF32);
  RotatedLayerSource rotated_source(*checkpoint_, config_, /*in_f32=*/true);
  RunResult original, rotated;
  run(original_source, original);
  run(rotated_source, rotated);
  const double err = relative_l2(rotated.logits.data<float>(), original.logits.data<float>(),
                                 original.logits.numel());
  std::printf("%s: logits relative L2, rotated in float32 vs original: %.3g\n", GetParam().c_str(), err);
  EXPECT_LT(err, 1e-4);  // the float forward's own tolerance against the PyTorch reference
}

TEST_P(RotatedTinyModel, QKAndRouterOutputsAreUnchanged) {
  model::CheckpointLayerSource original_source(*checkpoint_, config_, model::FloatPrecision::kF32);
  RotatedLayerSource rotated_source(*checkpoint_, config_);
  RunResult original, rotated;
  run(original_source, original);
  run(rotated_source, rotated);
  const std::int64_t rows = tokens_.layout.rows();

  // Each linear's input as the forward saw it (the norm's output: original ·γ, rotated ·R1 with γ folded into
  // the weight), times the layer's original and rotated weights.
  for (std::int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const std::string p = model::layer_prefix(l);
    const model::LayerTensors raw = model::read_layer_tensors(*checkpoint_, config_, l);
    const model::LayerTensors rotated_weights = rotated_source.rotated_layer(l);
    const std::pair<const char*, const char*> checks[] = {
        {"self_attn.q_proj", "self_attn.q_proj"}, {"self_attn.k_proj", "self_attn.q_proj"},  // q/k share an input
        {"mlp.gate", "mlp.gate"}};
    for (const auto& [module, input_of] : checks) {
      if (std::string(module) == "mlp.gate" && !config_.is_moe_layer(l)) continue;
      const std::vector<float>& x = original.inputs.inputs.at(p + input_of);
      const std::vector<float>& xr = rotated.inputs.inputs.at(p + input_of);
      const std::string name = p + module + ".weight";
      const std::vector<float> want = linear(x, rows, raw.at(name));
      const std::vector<float> got = linear(xr, rows, rotated_weights.at(name));
      const double err = relative_l2(got.data(), want.data(), want.size());
      std::printf("%s: layer %lld %s output, rotated vs original: %.3g\n", GetParam().c_str(),
                  static_cast<long long>(l), module, err);
      // Two bf16 roundings of W (fold, ·R1) plus the drift of the layer's input through the earlier layers.
      EXPECT_LT(err, 2e-2) << "layer " << l << " " << module;
    }
  }
}

TEST(Rotation, RejectsLayersItCannotRotate) {
  const auto dir = testing::bundled_model_dir();
  const model::ModelConfig config = model::ModelConfig::load(dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  const Rotation rot = Rotation::for_config(config);

  model::LayerTensors with_bias = model::read_layer_tensors(checkpoint, config, 0);
  with_bias["model.layers.0.input_layernorm.bias"] = Tensor::zeros(DType::kF32, {config.hidden_size});
  EXPECT_THROW(rotate_layer(config, 0, with_bias, rot), Error);

  model::LayerTensors missing = model::read_layer_tensors(checkpoint, config, 0);
  missing.erase("model.layers.0.self_attn.v_proj.weight");
  EXPECT_THROW(rotate_layer(config, 0, missing, rot), Error);

  model::LayerTensors ok = model::read_layer_tensors(checkpoint, config, 0);
  EXPECT_THROW(rotate_layer(config, 0, ok, Rotation::for_sizes(128, 64)), Error);

  model::ModelConfig tied = config;
  tied.tie_word_embeddings = true;
  EXPECT_THROW(Rotation::for_config(tied), Error);
  model::ModelConfig odd = config;
  odd.head_dim = 48;
  EXPECT_THROW(Rotation::for_config(odd), Error);
}

TEST(Rotation, LayerTensorsKeepTheirDtypeAndNormsBecomeOnes) {
  const auto dir = testing::bundled_model_dir();
  const model::ModelConfig config = model::ModelConfig::load(dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  model::LayerTensors t = model::read_layer_tensors(checkpoint, config, 1);
  const model::LayerTensors before = t;
  rotate_layer(config, 1, t, Rotation::for_config(config));
  ASSERT_EQ(t.size(), before.size());
  for (const auto& [name, tensor] : t) {
    EXPECT_EQ(tensor.dtype(), before.at(name).dtype()) << name;
    EXPECT_EQ(tensor.shape(), before.at(name).shape()) << name;
  }
  for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
    const Tensor g = t.at("model.layers.1." + std::string(norm) + ".weight").to_f32();
    for (std::size_t i = 0; i < g.numel(); ++i) ASSERT_EQ(g.data<float>()[i], 1.0f) << norm;
  }
  // q_norm / k_norm are not touched: the very same tensors.
  for (const char* norm : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) {
    const std::string name = "model.layers.1." + std::string(norm);
    EXPECT_EQ(t.at(name).bytes(), before.at(name).bytes()) << name;
  }
  // The checkpoint's mapped weights were read, not written.
  const Tensor q = checkpoint.tensor("model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(q.bytes(), before.at("model.layers.1.self_attn.q_proj.weight").bytes());
  EXPECT_NE(t.at("model.layers.1.self_attn.q_proj.weight").bytes(), q.bytes());
}

// The pipeline rotates a MoE layer's experts one weight at a time, as each is read: the same tensors, bit for
// bit, as rotating the whole layer, and nothing of an expert touched by the rest.
TEST(Rotation, ExpertsRotatedOneAtATimeEqualTheWholeLayersRotation) {
  const auto dir = testing::bundled_model_dir();
  const model::ModelConfig config = model::ModelConfig::load(dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  const Rotation rotation = Rotation::for_config(config);
  const model::LayerTensors original = model::read_layer_tensors(checkpoint, config, 1);
  model::LayerTensors whole = original, parts = original;
  rotate_layer(config, 1, whole, rotation);
  rotate_layer_except_experts(config, 1, parts, rotation);
  const Tensor post_norm = original.at("model.layers.1.post_attention_layernorm.weight");
  for (const auto& [name, tensor] : whole) {
    Tensor got = parts.at(name);
    const std::optional<model::ModuleId> module = model::parse_hf_module_name(name.substr(0, name.rfind('.')));
    if (module && module->is_expert()) {
      EXPECT_EQ(got.bytes(), original.at(name).bytes()) << name << " is left for rotate_expert_weight";
      got = rotate_expert_weight(*module, got, post_norm, rotation);
    }
    ASSERT_EQ(got.nbytes(), tensor.nbytes()) << name;
    EXPECT_EQ(std::memcmp(got.bytes(), tensor.bytes(), tensor.nbytes()), 0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedTinyModels, RotatedTinyModel, ::testing::ValuesIn(testing::kSharedTinyModels),
                         [](const auto& info) { return testing::model_param_name(info.param); });
// The W4A8 recipes rotate the massive-activation model too: its spikes (625–1500) must survive the rotation.
INSTANTIATE_TEST_SUITE_P(MassiveTinyModel, RotatedTinyModel, ::testing::Values(std::string("tiny-qwen3-moe-massive")),
                         [](const auto& info) { return testing::model_param_name(info.param); });

}  // namespace
}  // namespace moeslim::quant
