// The decoder layer against a naive double-precision implementation written from the spec, on small random
// layers: a sparse-MoE layer with and without norm_topk_prob, and a dense (mlp_only_layers) layer; plus the
// synthetic checkpoint writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "io/checkpoint.h"
#include "kernels/threading.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "model/synthetic_checkpoint.h"
#include "common/test_paths.h"

namespace moeslim::model {
namespace {

using Mat = std::vector<double>;  // row-major

ModelConfig small_config(bool norm_topk_prob, bool dense_layer0) {
  nlohmann::json j = {{"model_type", "qwen3_moe"}, {"vocab_size", 50},        {"hidden_size", 32},
                      {"num_hidden_layers", 2},     {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"head_dim", 16},             {"num_experts", 6},        {"num_experts_per_tok", 3},
                      {"moe_intermediate_size", 8}, {"intermediate_size", 24}, {"norm_topk_prob", norm_topk_prob},
                      {"rope_theta", 10000.0},      {"rms_norm_eps", 1e-6}};
  if (dense_layer0) j["mlp_only_layers"] = {0};
  return ModelConfig::from_json(j, "small");
}

LayerTensors random_layer(const ModelConfig& c, std::int64_t layer, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.3f);
  LayerTensors t;
  for (const ExpectedTensor& e : expected_layer_tensors(c, layer)) {
    Tensor x = Tensor::zeros(DType::kF32, e.shape);
    const bool norm = e.name.find("norm") != std::string::npos;
    for (float& v : std::span<float>(x.mutable_data<float>(), x.numel())) v = norm ? 1.0f + normal(rng) : normal(rng);
    t.emplace(e.name, std::move(x));
  }
  return t;
}

Mat to_mat(const Tensor& t) { return Mat(t.data<float>(), t.data<float>() + t.numel()); }

// y[rows, n] = x[rows, k] · W[n, k]ᵀ
Mat linear(const Mat& x, std::int64_t rows, const Tensor& w) {
  const std::int64_t n = w.dim(0), k = w.dim(1);
  Mat y(static_cast<std::size_t>(rows * n));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::int64_t i = 0; i < k; ++i) s += x[r * k + i] * w.data<float>()[j * k + i];
      y[r * n + j] = s;
    }
  return y;
}

void rms_norm(Mat& x, std::int64_t rows, std::int64_t n, const Tensor& w, double eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (std::int64_t i = 0; i < n; ++i) ss += x[r * n + i] * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + eps);
    for (std::int64_t i = 0; i < n; ++i) x[r * n + i] = x[r * n + i] * inv * w.data<float>()[i];
  }
}

void rope(Mat& x, std::int64_t rows, std::int64_t heads, std::int64_t d, const std::vector<std::int64_t>& pos,
          double theta) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < d / 2; ++i) {
        const double angle = pos[r] / std::pow(theta, 2.0 * i / d);
        double& a = x[(r * heads + h) * d + i];
        double& b = x[(r * heads + h) * d + i + d / 2];
        const double na = a * std::cos(angle) - b * std::sin(angle);
        const double nb = b * std::cos(angle) + a * std::sin(angle);
        a = na;
        b = nb;
      }
}

Mat swiglu(const Mat& x, std::int64_t rows, const LayerTensors& t, const std::string& p) {
  Mat g = linear(x, rows, t.at(p + "gate_proj.weight"));
  const Mat u = linear(x, rows, t.at(p + "up_proj.weight"));
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  return linear(g, rows, t.at(p + "down_proj.weight"));
}

// The whole decoder layer for one unpadded sequence, in double precision.
Mat naive_layer(const ModelConfig& c, std::int64_t layer, const LayerTensors& t, Mat h, std::int64_t T) {
  const std::string p = layer_prefix(layer);
  const std::int64_t H = c.hidden_size, d = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  std::vector<std::int64_t> pos(static_cast<std::size_t>(T));
  for (std::int64_t i = 0; i < T; ++i) pos[i] = i;
  Mat a = h;
  rms_norm(a, T, H, t.at(p + "input_layernorm.weight"), c.rms_norm_eps);
  Mat q = linear(a, T, t.at(p + "self_attn.q_proj.weight"));
  Mat k = linear(a, T, t.at(p + "self_attn.k_proj.weight"));
  const Mat v = linear(a, T, t.at(p + "self_attn.v_proj.weight"));
  rms_norm(q, T * nh, d, t.at(p + "self_attn.q_norm.weight"), c.rms_norm_eps);
  rms_norm(k, T * nkv, d, t.at(p + "self_attn.k_norm.weight"), c.rms_norm_eps);
  rope(q, T, nh, d, pos, c.rope_theta);
  rope(k, T, nkv, d, pos, c.rope_theta);
  Mat ctx(static_cast<std::size_t>(T * nh * d), 0.0);
  for (std::int64_t hd = 0; hd < nh; ++hd) {
    const std::int64_t kvh = hd / (nh / nkv);
    for (std::int64_t i = 0; i < T; ++i) {
      std::vector<double> s(static_cast<std::size_t>(i + 1));
      double mx = -1e300;
      for (std::int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (std::int64_t e = 0; e < d; ++e) dot += q[(i * nh + hd) * d + e] * k[(j * nkv + kvh) * d + e];
        s[j] = dot / std::sqrt(static_cast<double>(d));
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (std::int64_t j = 0; j <= i; ++j)
        for (std::int64_t e = 0; e < d; ++e) ctx[(i * nh + hd) * d + e] += s[j] / z * v[(j * nkv + kvh) * d + e];
    }
  }
  const Mat o = linear(ctx, T, t.at(p + "self_attn.o_proj.weight"));
  for (std::size_t i = 0; i < h.size(); ++i) h[i] += o[i];

  Mat b = h;
  rms_norm(b, T, H, t.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
  Mat out(h.size(), 0.0);
  if (!c.is_moe_layer(layer)) {
    out = swiglu(b, T, t, p + "mlp.");
  } else {
    const Mat logits = linear(b, T, t.at(p + "mlp.gate.weight"));
    const std::int64_t E = c.num_experts, K = c.num_experts_per_tok;
    for (std::int64_t r = 0; r < T; ++r) {
      std::vector<std::pair<double, std::int64_t>> probs;
      double mx = -1e300, z = 0;
      for (std::int64_t e = 0; e < E; ++e) mx = std::max(mx, logits[r * E + e]);
      for (std::int64_t e = 0; e < E; ++e) z += std::exp(logits[r * E + e] - mx);
      for (std::int64_t e = 0; e < E; ++e) probs.push_back({std::exp(logits[r * E + e] - mx) / z, e});
      std::sort(probs.begin(), probs.end(), [](auto& x, auto& y) { return x.first > y.first; });
      double top_sum = 0;
      for (std::int64_t s = 0; s < K; ++s) top_sum += probs[s].first;
      const Mat row(b.begin() + r * H, b.begin() + (r + 1) * H);
      for (std::int64_t s = 0; s < K; ++s) {
        const double w = c.norm_topk_prob ? probs[s].first / top_sum : probs[s].first;
        const Mat y = swiglu(row, 1, t, p + "mlp.experts." + std::to_string(probs[s].second) + ".");
        for (std::int64_t i = 0; i < H; ++i) out[r * H + i] += w * y[i];
      }
    }
  }
  for (std::size_t i = 0; i < h.size(); ++i) h[i] += out[i];
  return h;
}

double relative_l2(const Tensor& got, const Mat& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got.data<float>()[i] - want[i]) * (got.data<float>()[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

void check_layer(const ModelConfig& c, std::int64_t layer) {
  std::mt19937 rng(1234 + static_cast<unsigned>(layer));
  const LayerTensors t = random_layer(c, layer, rng);
  const DecoderLayer d = build_float_layer(c, layer, t, FloatPrecision::kF32);
  const std::int64_t T = 11;
  Tensor h = Tensor::zeros(DType::kF32, {T, c.hidden_size});
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : std::span<float>(h.mutable_data<float>(), h.numel())) v = normal(rng);
  const Mat want = naive_layer(c, layer, t, to_mat(h), T);
  d.forward(c, h, packed_layout({T}), nullptr);
  EXPECT_LE(relative_l2(h, want), 1e-5);
}

TEST(DecoderLayerVsNaive, MoeWithNormTopkProb) { check_layer(small_config(true, false), 1); }
TEST(DecoderLayerVsNaive, MoeWithoutNormTopkProb) { check_layer(small_config(false, false), 1); }
TEST(DecoderLayerVsNaive, DenseMlpOnlyLayer) {
  const ModelConfig c = small_config(true, true);
  ASSERT_FALSE(c.is_moe_layer(0));
  check_layer(c, 0);
}

TEST(DecoderLayer, ObserverSeesEveryLinearInputAndRouting) {
  struct Recorder : ForwardObserver {
    std::map<std::string, std::int64_t> rows;
    std::int64_t routed = 0;
    void on_linear_input(const ModuleId& m, const float*, std::int64_t r, std::int64_t, const std::uint8_t*) override {
      rows[hf_module_name(m)] += r;
    }
    void on_routing(std::int64_t, const std::int32_t*, const float*, std::int64_t r, std::int64_t k,
                    const std::uint8_t*) override {
      routed += r * k;
    }
  } recorder;
  const ModelConfig c = small_config(true, false);
  std::mt19937 rng(7);
  const DecoderLayer d = build_float_layer(c, 1, random_layer(c, 1, rng), FloatPrecision::kF32);
  Tensor h = Tensor::zeros(DType::kF32, {9, c.hidden_size});
  for (std::size_t i = 0; i < h.numel(); ++i) h.mutable_data<float>()[i] = std::sin(static_cast<float>(i));
  d.forward(c, h, packed_layout({4, 5}), &recorder);
  EXPECT_EQ(recorder.rows["model.layers.1.self_attn.q_proj"], 9);
  EXPECT_EQ(recorder.rows["model.layers.1.self_attn.o_proj"], 9);
  EXPECT_EQ(recorder.rows["model.layers.1.mlp.gate"], 9);
  EXPECT_EQ(recorder.routed, 9 * 3);
  std::int64_t expert_rows = 0;
  for (std::int64_t e = 0; e < c.num_experts; ++e) {
    const std::string p = "model.layers.1.mlp.experts." + std::to_string(e) + ".";
    EXPECT_EQ(recorder.rows[p + "up_proj"], recorder.rows[p + "down_proj"]);
    expert_rows += recorder.rows[p + "up_proj"];
  }
  EXPECT_EQ(expert_rows, 9 * 3);  // every (token, slot) pair reaches exactly one expert
}

// Records the order in which expert modules are observed; not safe for concurrent calls.
struct ExpertOrder : ForwardObserver {
  std::vector<std::int64_t> experts;
  void on_linear_input(const ModuleId& m, const float*, std::int64_t, std::int64_t, const std::uint8_t*) override {
    if (m.role == ModuleRole::kDownProj) experts.push_back(m.expert);
  }
};

// Counts each expert's rows; safe for concurrent calls (one counter per expert, each touched by its own task).
struct ConcurrentRows : ForwardObserver {
  explicit ConcurrentRows(std::int64_t experts) : rows(static_cast<std::size_t>(experts), 0) {}
  std::vector<std::int64_t> rows;
  bool accepts_concurrent_modules() const override { return true; }
  void on_linear_input(const ModuleId& m, const float*, std::int64_t r, std::int64_t, const std::uint8_t*) override {
    if (m.role == ModuleRole::kDownProj) rows[static_cast<std::size_t>(m.expert)] += r;
  }
};

// Buffers that a kernel overwrites in full are handed out holding the previous chunk's values: a forward on
// a scratch that just ran a larger, different chunk (padded, so some rows are not real) must give the bits a
// fresh scratch gives.
TEST(DecoderLayer, ReusedScratchGivesTheBitsOfAFreshOne) {
  const ModelConfig c = small_config(true, false);
  std::mt19937 rng(77);
  const DecoderLayer d = build_float_layer(c, 1, random_layer(c, 1, rng), FloatPrecision::kF32);
  const auto filled = [&](std::int64_t rows, float phase) {
    Tensor h = Tensor::zeros(DType::kF32, {rows, c.hidden_size});
    for (std::size_t i = 0; i < h.numel(); ++i) h.mutable_data<float>()[i] = std::sin(phase + 0.11f * static_cast<float>(i));
    return h;
  };
  TokenLayout big;
  const std::vector<std::uint8_t> real = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  big.add_sequence(12, real.data());
  const TokenLayout small = packed_layout({5, 4});
  Tensor fresh = filled(9, 0.5f);
  d.forward(c, fresh, small, nullptr);
  ForwardScratch scratch;
  Tensor first = filled(12, 2.0f);
  d.forward(c, first, big, nullptr, &scratch);
  Tensor reused = filled(9, 0.5f);
  d.forward(c, reused, small, nullptr, &scratch);
  EXPECT_EQ(std::memcmp(reused.bytes(), fresh.bytes(), fresh.nbytes()), 0);
}

TEST(DecoderLayer, ExpertsRunInParallelWithTheSameBitsAsOneThread) {
  // The tiny model's shapes: GEMMs big enough for oneDNN's blocked kernels and their scratchpads.
  const ModelConfig c = ModelConfig::from_json(
      {{"model_type", "qwen3_moe"}, {"vocab_size", 50}, {"hidden_size", 256}, {"num_hidden_layers", 2},
       {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 64}, {"num_experts", 16},
       {"num_experts_per_tok", 4}, {"moe_intermediate_size", 128}, {"intermediate_size", 768},
       {"norm_topk_prob", true}, {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-6}},
      "tiny-shaped");
  std::mt19937 rng(21);
  for (FloatPrecision precision : {FloatPrecision::kF32, FloatPrecision::kBF16}) {
    const DecoderLayer d = build_float_layer(c, 1, random_layer(c, 1, rng), precision);
    const TokenLayout layout = packed_layout({57, 63});  // 120 tokens x 4 slots: the experts go in several groups
    Tensor input = Tensor::zeros(DType::kF32, {120, c.hidden_size});
    for (std::size_t i = 0; i < input.numel(); ++i) input.mutable_data<float>()[i] = std::cos(0.37f * static_cast<float>(i));
    const auto run = [&](int threads, ForwardObserver* observer) {
      kernels::set_num_threads(threads);
      Tensor h = input.clone();
      d.forward(c, h, layout, observer);
      kernels::set_num_threads(1);
      return h;
    };
    const Tensor serial = run(1, nullptr);
    const Tensor parallel = run(2, nullptr);
    ConcurrentRows counted(c.num_experts);
    const Tensor parallel_observed = run(2, &counted);
    ExpertOrder order;
    const Tensor in_order = run(2, &order);
    for (const Tensor* t : {&parallel, &parallel_observed, &in_order}) {
      EXPECT_EQ(std::memcmp(t->bytes(), serial.bytes(), serial.nbytes()), 0);
    }
    std::int64_t routed = 0;
    for (std::int64_t r : counted.rows) routed += r;
    EXPECT_EQ(routed, 120 * c.num_experts_per_tok);
    // An observer that does not accept concurrent calls sees the experts one at a time, in ascending order.
    EXPECT_TRUE(std::is_sorted(order.experts.begin(), order.experts.end()));
    EXPECT_EQ(order.experts.size(), static_cast<std::size_t>(std::count_if(
                                         counted.rows.begin(), counted.rows.end(), [](std::int64_t r) { return r > 0; })));
  }
}

TEST(SyntheticCheckpoint, WritesTheRealNamesShapesAndShardsAndRuns) {
  testing::TempDir dir("synth");
  SynthOptions o;
  o.preset = "tiny";
  o.layers = 2;
  o.seed = 3;
  o.out_dir = dir.path() / "m";
  o.max_shard_bytes = 4 << 20;  // forces several shards
  o.config_overrides = {{"mlp_only_layers", {1}}, {"norm_topk_prob", false}};
  const SynthSummary s = write_synthetic_checkpoint(o);
  EXPECT_GT(s.shards.size(), 1u);
  const ModelConfig c = ModelConfig::load(o.out_dir);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_FALSE(c.is_moe_layer(1));
  const io::Checkpoint ckpt = io::Checkpoint::open(o.out_dir);
  for (const ExpectedTensor& e : expected_tensors(c)) {
    ASSERT_TRUE(ckpt.contains(e.name)) << e.name;
    EXPECT_EQ(ckpt.info(e.name).shape, e.shape) << e.name;
    EXPECT_EQ(ckpt.info(e.name).dtype, DType::kBF16);
  }
  // Deterministic in (seed, name): a second run gives the same bytes.
  o.out_dir = dir.path() / "m2";
  write_synthetic_checkpoint(o);
  const io::Checkpoint again = io::Checkpoint::open(o.out_dir);
  const Tensor a = ckpt.tensor("model.layers.0.mlp.experts.3.up_proj.weight");
  const Tensor b = again.tensor("model.layers.0.mlp.experts.3.up_proj.weight");
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0);
  // Activations stay finite through the random layers.
  CheckpointLayerSource source(ckpt, c, FloatPrecision::kF32);
  TokenSet tokens;
  tokens.ids = {1, 2, 3, 4, 5, 6, 7};
  tokens.layout.add_sequence(7);
  const Tensor hidden = run_layers(source, tokens, {});
  for (float v : hidden.span<float>()) ASSERT_TRUE(std::isfinite(v));
}

// A large tensor is scanned in blocks over the threads; the first bad element is reported whichever block finds
// one first.
TEST(CheckFinite, LargeTensorsReportTheFirstBadElementAtAnyThreadCount) {
  Tensor t = Tensor::zeros(DType::kBF16, {5, 4 << 20});  // 40 MiB: three blocks of 16 MiB
  auto* bits = t.mutable_data<std::uint16_t>();
  bits[(17u << 20) + 3] = 0x7f80;  // +inf in the third block
  for (int threads : {1, 2, 3}) {
    kernels::set_num_threads(threads);
    try {
      check_finite(t, "f", "w");
      ADD_FAILURE() << "an infinity not found";
    } catch (const Error& e) {
      EXPECT_NE(e.detail().find("an infinity at element [4, 1048579]"), std::string::npos) << e.what();
    }
  }
  bits[(9u << 20) + 1] = 0x7fc1;  // a NaN in the second block comes first
  try {
    check_finite(t, "f", "w");
    ADD_FAILURE() << "a NaN not found";
  } catch (const Error& e) {
    EXPECT_NE(e.detail().find("a NaN at element [2, 1048577]"), std::string::npos) << e.what();
  }
  kernels::set_num_threads(1);
}

}  // namespace
}  // namespace moeslim::model
