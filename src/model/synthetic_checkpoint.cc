#include "model/synthetic_checkpoint.h"

#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "core/progress.h"
#include "io/safetensors_writer.h"

namespace moeslim::model {
namespace {

using nlohmann::ordered_json;

struct Preset {
  const char* name;
  std::int64_t hidden, heads, kv_heads, head_dim, intermediate, moe_intermediate, experts, top_k, vocab;
  std::int64_t max_positions;
  std::int64_t bos, eos;
  double rope_theta;
};

constexpr Preset kPresets[] = {
    {"tiny", 256, 8, 2, 64, 768, 128, 16, 4, 4096, 4096, 4000, 4000, 1e6},
    {"qwen3-30b-a3b", 2048, 32, 4, 128, 6144, 768, 128, 8, 151936, 40960, 151643, 151645, 1e6},
    {"qwen3-235b-a22b", 4096, 64, 4, 128, 12288, 1536, 128, 8, 151936, 40960, 151643, 151645, 1e6},
    // Qwen3-Coder-480B-A35B-Instruct: 160 experts of width 2560 on hidden 6144, 96 query heads; 62 layers.
    {"qwen3-coder-480b-a35b", 6144, 96, 8, 128, 8192, 2560, 160, 8, 151936, 262144, 151643, 151645, 1e7},
};

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : kPresets) {
    if (name == p.name) return p;
  }
  std::string known;
  for (const Preset& p : kPresets) known += std::string(known.empty() ? "" : ", ") + p.name;
  throw Error(ErrorCode::kInvalidArgument, "unknown preset '" + name + "' (known: " + known + ")", "", "--preset");
}

// splitmix64: seeds a stream per tensor so values depend only on (seed, name), not on write order.
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t hash_name(const std::string& name, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// bf16 samples of mean + std * z, z approximately standard normal (Irwin-Hall sum of four uniforms: cheap,
// bounded at ±3.5σ, which is all a weight generator needs).
Tensor random_bf16(const Shape& shape, const std::string& name, std::uint64_t seed, float mean, float std) {
  Tensor t = Tensor::zeros(DType::kBF16, shape);
  std::uint16_t* out = t.mutable_data<std::uint16_t>();
  std::uint64_t state = hash_name(name, seed);
  constexpr float kInvSigma = 1.7320508f;  // 1 / sqrt(4/12)
  const float scale = std * kInvSigma / 65536.0f;
  for (std::size_t i = 0; i < t.numel(); ++i) {
    const std::uint64_t r = splitmix64(state);
    const float sum = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = f32_to_bf16(mean + (sum - 2.0f * 65536.0f) * scale);
  }
  return t;
}

bool is_norm(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

void copy_file_or_throw(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot copy to " + to.string() + ": " + ec.message(), from.string());
}

void write_json(const std::filesystem::path& path, const ordered_json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) throw Error(ErrorCode::kIo, "cannot write", path.string());
}

}  // namespace

std::vector<std::string> synthetic_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

ordered_json synthetic_config_json(const std::string& preset, std::int64_t layers) {
  const Preset& p = find_preset(preset);
  if (layers < 1) throw Error(ErrorCode::kInvalidArgument, "must be at least 1", "", "--layers");
  return ordered_json{
      {"architectures", {"Qwen3MoeForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", p.bos},
      {"decoder_sparse_step", 1},
      {"eos_token_id", p.eos},
      {"head_dim", p.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", p.hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", p.intermediate},
      {"max_position_embeddings", p.max_positions},
      {"max_window_layers", layers},
      {"mlp_only_layers", ordered_json::array()},
      {"model_type", "qwen3_moe"},
      {"moe_intermediate_size", p.moe_intermediate},
      {"norm_topk_prob", true},
      {"num_attention_heads", p.heads},
      {"num_experts", p.experts},
      {"num_experts_per_tok", p.top_k},
      {"num_hidden_layers", layers},
      {"num_key_value_heads", p.kv_heads},
      {"output_router_logits", false},
      {"rms_norm_eps", 1e-06},
      {"rope_scaling", nullptr},
      {"rope_theta", p.rope_theta},
      {"router_aux_loss_coef", 0.001},
      {"sliding_window", nullptr},
      {"tie_word_embeddings", false},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.51.0"},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", p.vocab},
  };
}

SynthSummary write_synthetic_checkpoint(const SynthOptions& o) {
  ordered_json config_json = synthetic_config_json(o.preset, o.layers);
  for (const auto& [key, value] : o.config_overrides.items()) config_json[key] = value;
  const ModelConfig config = ModelConfig::from_json(nlohmann::json::parse(config_json.dump()), "synthetic config");

  std::filesystem::create_directories(o.out_dir);
  write_json(o.out_dir / "config.json", config_json);
  write_json(o.out_dir / "generation_config.json",
             ordered_json{{"bos_token_id", config_json["bos_token_id"]},
                          {"eos_token_id", config_json["eos_token_id"]},
                          {"transformers_version", "4.51.0"}});
  if (!o.tokenizer.empty()) {
    const bool is_dir = std::filesystem::is_directory(o.tokenizer);
    const auto tokenizer_json = is_dir ? o.tokenizer / "tokenizer.json" : o.tokenizer;
    copy_file_or_throw(tokenizer_json, o.out_dir / "tokenizer.json");
    const auto tokenizer_config = tokenizer_json.parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(tokenizer_config)) copy_file_or_throw(tokenizer_config, o.out_dir / "tokenizer_config.json");
  }

  const std::vector<ExpectedTensor> tensors = expected_tensors(config);
  io::ShardedWriterOptions writer_options;
  writer_options.max_shard_bytes = o.max_shard_bytes;
  io::ShardedSafetensorsWriter writer(o.out_dir, "model", writer_options);
  std::vector<io::PlannedTensor> planned;
  for (const ExpectedTensor& t : tensors) planned.push_back({t.name, DType::kBF16, t.shape});
  writer.plan(std::move(planned));  // each shard written once
  Progress progress("synth " + o.preset, tensors.size(), "tensors");
  SynthSummary summary;
  for (const ExpectedTensor& t : tensors) {
    const bool norm = is_norm(t.name);
    writer.add(t.name, random_bf16(t.shape, t.name, o.seed, norm ? 1.0f : 0.0f, 0.02f));
    summary.bytes += shape_numel(t.shape) * 2;
    ++summary.tensors;
    progress.advance();
  }
  progress.finish();
  const auto written = writer.finish();
  summary.shards = written.shard_names;
  return summary;
}

}  // namespace moeslim::model
