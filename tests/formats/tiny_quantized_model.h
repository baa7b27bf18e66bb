// A hand-built quantized Qwen3-MoE of one decoder layer (hidden 8, 2 heads of 4, 1 KV head, 2 experts of
// width 4, vocab 16) for the export tests: the QuantizedLinear / NormTensors the pipeline would hand the
// writer, with every derived value (deq_scale, quant_bias) computed here by plain loops from spec §4.6, plus
// a fake input model directory (config + side files) to take the config from.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"
#include "formats/inspect_report.h"
#include "formats/msmodelslim/v0_writer.h"
#include "quant/quant_types.h"
#include "common/module_by_name.h"

namespace moeslim::formats::msmodelslim::testing {

inline constexpr std::int64_t kHidden = 8, kHeadDim = 4, kQOut = 8, kKvOut = 4, kExperts = 2, kMoeInter = 4,
                              kVocab = 16;

inline float round_to(float v, DType d) { return d == DType::kF16 ? f16_to_f32(f32_to_f16(v)) : round_to_bf16(v); }

inline Tensor f32_tensor(Shape shape, const std::vector<float>& values) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  for (std::size_t i = 0; i < values.size(); ++i) t.mutable_data<float>()[i] = values[i];
  return t;
}

// Codes spread over [-127, 127]; element [0, 0] is 127 so a test can turn it into the forbidden -128.
// An I8 tensor holding `values` (int8 or unpacked int4 codes).
inline Tensor i8_codes(Shape shape, const std::vector<int>& values) {
  Tensor t = Tensor::zeros(DType::kI8, std::move(shape));
  for (std::size_t i = 0; i < values.size(); ++i) {
    t.mutable_data<std::int8_t>()[i] = static_cast<std::int8_t>(values[i]);
  }
  return t;
}

inline Tensor weight_codes(std::int64_t out, std::int64_t in, int seed) {
  Tensor w = Tensor::zeros(DType::kI8, {out, in});
  auto* q = w.mutable_data<std::int8_t>();
  for (std::int64_t n = 0; n < out; ++n) {
    for (std::int64_t k = 0; k < in; ++k) q[n * in + k] = static_cast<std::int8_t>((n * 31 + k * 17 + seed * 7) % 255 - 127);
  }
  q[0] = 127;
  return w;
}

// Scales (n + 1 + seed) / 256: exact in bf16 and f16.
inline Tensor weight_scales(std::int64_t out, int seed) {
  std::vector<float> s(out);
  for (std::int64_t n = 0; n < out; ++n) s[n] = static_cast<float>(n + 1 + seed) / 256.0f;
  return f32_tensor({out}, s);
}

inline quant::QuantizedLinear dynamic_linear(const std::string& name, std::int64_t out, std::int64_t in, int seed) {
  quant::QuantizedLinear l;
  l.module = moeslim::testing::module_id(name);
  l.scheme = quant::QuantScheme::kW8A8Dynamic;
  l.weight = weight_codes(out, in, seed);
  l.weight_scale = weight_scales(out, seed);
  return l;
}

// A W8A8 static linear; deq_scale and quant_bias follow spec §4.6 in float32, the bias as the file holds it.
inline quant::QuantizedLinear static_linear(const std::string& name, std::int64_t out, std::int64_t in,
                                            bool with_bias, DType float_dtype, int seed) {
  quant::QuantizedLinear l = dynamic_linear(name, out, in, seed);
  l.scheme = quant::QuantScheme::kW8A8;
  // One activation scale and offset for every static linear: q, k and v must share theirs (vLLM-Ascend's fused
  // qkv_proj keeps one), which `inspect` checks.
  const float input_scale = round_to(0.038f, float_dtype);
  const float input_offset = -4.0f;
  l.input_scale = f32_tensor({1}, {input_scale});
  l.input_offset = f32_tensor({1}, {input_offset});
  std::vector<float> bias(out, 0.0f), deq(out);
  l.quant_bias = Tensor::zeros(DType::kI32, {out});
  for (std::int64_t n = 0; n < out; ++n) {
    if (with_bias) bias[n] = round_to(0.3f * static_cast<float>(n - 3) + 0.01f * seed, float_dtype);
    deq[n] = round_to(input_scale * l.weight_scale.data<float>()[n], float_dtype);
    std::int64_t code_sum = 0;
    for (std::int64_t k = 0; k < in; ++k) code_sum += l.weight.data<std::int8_t>()[n * in + k];
    const float corr = static_cast<float>(code_sum) * input_offset;
    l.quant_bias.mutable_data<std::int32_t>()[n] = static_cast<std::int32_t>(std::nearbyint(bias[n] / deq[n] - corr));
  }
  if (with_bias) l.bias = f32_tensor({out}, bias);
  l.deq_scale = f32_tensor({out}, deq);
  return l;
}

inline Tensor float_values(Shape shape, float base) {
  Tensor t = Tensor::zeros(DType::kF32, shape);
  for (std::size_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = base + 0.125f * static_cast<float>(i % 7);
  return t;
}

inline quant::NormTensors norm(const std::string& name, std::int64_t n, bool with_bias) {
  return {moeslim::testing::module_id(name), float_values({n}, 1.0f), with_bias ? float_values({n}, -0.5f) : Tensor()};
}

// Writes the whole model in Hugging Face module order, as the pipeline does.
inline void write_tiny_model(V0Writer& w, DType float_dtype) {
  w.add_float("model.embed_tokens.weight", float_values({kVocab, kHidden}, 0.25f));
  const std::string a = "model.layers.0.self_attn.";
  w.add_linear(static_linear(a + "q_proj", kQOut, kHidden, true, float_dtype, 1));
  w.add_linear(static_linear(a + "k_proj", kKvOut, kHidden, true, float_dtype, 2));
  w.add_linear(static_linear(a + "v_proj", kKvOut, kHidden, true, float_dtype, 3));
  w.add_linear(static_linear(a + "o_proj", kHidden, kQOut, false, float_dtype, 4));
  w.add_norm(norm(a + "q_norm", kHeadDim, false));
  w.add_norm(norm(a + "k_norm", kHeadDim, false));
  quant::QuantizedLinear router;
  router.module = moeslim::testing::module_id("model.layers.0.mlp.gate");
  router.weight = float_values({kExperts, kHidden}, 0.5f);
  w.add_linear(router);  // the kFloat path; add_float() is the other way in
  for (int e = 0; e < kExperts; ++e) {
    const std::string p = "model.layers.0.mlp.experts." + std::to_string(e) + ".";
    w.add_linear(dynamic_linear(p + "gate_proj", kMoeInter, kHidden, 10 + e));
    w.add_linear(dynamic_linear(p + "up_proj", kMoeInter, kHidden, 20 + e));
    w.add_linear(dynamic_linear(p + "down_proj", kHidden, kMoeInter, 30 + e));
  }
  w.add_norm(norm("model.layers.0.input_layernorm", kHidden, true));
  w.add_norm(norm("model.layers.0.post_attention_layernorm", kHidden, false));
  w.add_norm(norm("model.norm", kHidden, false));
  w.add_float("lm_head.weight", float_values({kVocab, kHidden}, -0.25f));
}

struct ExpectedTensor {
  std::string name;
  std::string type;
  DType dtype;
  Shape shape;
};

// Spec §2 (and §4 for `mindie`), written out by hand: what the writer must produce for the model above.
inline std::vector<ExpectedTensor> expected_tensors(DType fd, bool mindie) {
  std::vector<ExpectedTensor> t;
  const DType deq = fd == DType::kF16 ? DType::kI64 : DType::kF32;
  auto static_linear = [&](const std::string& m, std::int64_t out, std::int64_t in, bool bias) {
    t.push_back({m + ".weight", "W8A8", DType::kI8, {out, in}});
    if (bias) t.push_back({m + ".bias", "FLOAT", fd, {out}});
    t.push_back({m + ".weight_scale", "W8A8", fd, {out, 1}});
    t.push_back({m + ".weight_offset", "W8A8", fd, {out, 1}});
    t.push_back({m + ".input_scale", "W8A8", fd, {1}});
    t.push_back({m + ".input_offset", "W8A8", fd, {1}});
    t.push_back({m + ".quant_bias", "W8A8", DType::kI32, {out}});
    t.push_back({m + ".deq_scale", "W8A8", deq, {out}});
  };
  auto dynamic_linear = [&](const std::string& m, std::int64_t out, std::int64_t in) {
    t.push_back({m + ".weight", "W8A8_DYNAMIC", DType::kI8, {out, in}});
    t.push_back({m + ".weight_scale", "W8A8_DYNAMIC", fd, {out, 1}});
    t.push_back({m + ".weight_offset", "W8A8_DYNAMIC", fd, {out, 1}});
  };
  auto norm = [&](const std::string& m, std::int64_t n) {
    t.push_back({m + ".weight", "FLOAT", fd, {n}});
    t.push_back({m + ".bias", "FLOAT", fd, {n}});
    if (mindie) {
      t.push_back({m + ".module.weight", "W8A8", fd, {n}});
      t.push_back({m + ".module.bias", "W8A8", fd, {n}});
    }
  };
  t.push_back({"model.embed_tokens.weight", "FLOAT", fd, {kVocab, kHidden}});
  const std::string a = "model.layers.0.self_attn.";
  static_linear(a + "q_proj", kQOut, kHidden, true);
  static_linear(a + "k_proj", kKvOut, kHidden, true);
  static_linear(a + "v_proj", kKvOut, kHidden, true);
  static_linear(a + "o_proj", kHidden, kQOut, false);
  norm(a + "q_norm", kHeadDim);
  norm(a + "k_norm", kHeadDim);
  t.push_back({"model.layers.0.mlp.gate.weight", "FLOAT", fd, {kExperts, kHidden}});
  for (int e = 0; e < kExperts; ++e) {
    const std::string p = "model.layers.0.mlp.experts." + std::to_string(e) + ".";
    dynamic_linear(p + "gate_proj", kMoeInter, kHidden);
    dynamic_linear(p + "up_proj", kMoeInter, kHidden);
    dynamic_linear(p + "down_proj", kHidden, kMoeInter);
  }
  norm("model.layers.0.input_layernorm", kHidden);
  norm("model.layers.0.post_attention_layernorm", kHidden);
  norm("model.norm", kHidden);
  t.push_back({"lm_head.weight", "FLOAT", fd, {kVocab, kHidden}});
  return t;
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// The input model directory: a 2-layer config (the output holds 1 layer) and side files, plus weight files
// that must not be copied.
inline void make_input_model_dir(const std::filesystem::path& dir, DType fd) {
  std::filesystem::create_directories(dir);
  write_file(dir / "config.json", std::string(R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "model_type": "qwen3_moe",
  "hidden_size": 8,
  "num_hidden_layers": 2,
  "num_experts": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "torch_dtype": ")") + (fd == DType::kF16 ? "float16" : "bfloat16") + R"(",
  "vocab_size": 16
})");
  write_file(dir / "generation_config.json", R"({"bos_token_id": 1})");
  write_file(dir / "tokenizer.json", R"({"version": "1.0"})");
  write_file(dir / "tokenizer_config.json", R"({"model_max_length": 4096})");
  write_file(dir / "merges.txt", "a b\n");
  write_file(dir / "chat_template.jinja", "{{ messages }}");
  write_file(dir / "model.safetensors", "not really weights");
  write_file(dir / "model.safetensors.index.json", R"({"metadata": {}, "weight_map": {}})");
}

// Writes the tiny model from `model_dir` into `out_dir`.
inline WrittenOutput write_tiny_output(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                                           Layout format, DType fd, std::int64_t layer_count_written = 1,
                                           std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes) {
  V0Writer writer(out_dir, format, fd, max_shard_bytes);
  write_tiny_model(writer, fd);
  return writer.finish(model_dir, layer_count_written);
}

// Every violation of an inspect report, one per line (for failure messages).
inline std::string violations_text(const InspectReport& r) {
  std::string s;
  for (const auto& v : r.violations) s += v.subject + ": " + v.problem + "\n";
  return s;
}

// Whether `r` has a violation about `subject` whose problem contains `problem_part`.
inline bool names(const InspectReport& r, const std::string& subject, const std::string& problem_part = "") {
  for (const auto& v : r.violations) {
    if (v.subject == subject && v.problem.find(problem_part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace moeslim::formats::msmodelslim::testing
