#include "model/config.h"

#include <algorithm>

#include "core/error.h"
#include "io/json_file.h"

namespace moeslim::model {
namespace {

using nlohmann::json;

// Reads an optional key with a type check; leaves `out` (the default) alone when the key is absent or null.
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  void integer(const char* key, std::int64_t& out, bool required = false) const {
    const json* v = find(key, required);
    if (v == nullptr) return;
    if (!v->is_number_integer()) fail(key, "must be an integer, got " + describe(*v));
    out = v->get<std::int64_t>();
  }
  void number(const char* key, double& out) const {
    const json* v = find(key, false);
    if (v == nullptr) return;
    if (!v->is_number()) fail(key, "must be a number, got " + describe(*v));
    out = v->get<double>();
  }
  void boolean(const char* key, bool& out) const {
    const json* v = find(key, false);
    if (v == nullptr) return;
    if (!v->is_boolean()) fail(key, "must be true or false, got " + describe(*v));
    out = v->get<bool>();
  }
  void string(const char* key, std::string& out) const {
    const json* v = find(key, false);
    if (v == nullptr) return;
    if (!v->is_string()) fail(key, "must be a string, got " + describe(*v));
    out = v->get<std::string>();
  }
  void integer_list(const char* key, std::vector<std::int64_t>& out) const {
    const json* v = find(key, false);
    if (v == nullptr) return;
    if (!v->is_array()) fail(key, "must be a list of integers, got " + describe(*v));
    out.clear();
    for (const json& e : *v) {
      if (!e.is_number_integer()) fail(key, "must be a list of integers, found " + describe(e));
      out.push_back(e.get<std::int64_t>());
    }
  }
  const json* find(const char* key, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) throw Error(ErrorCode::kFormat, "required key is missing", source_, key);
      return nullptr;
    }
    return &*it;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(ErrorCode::kFormat, why, source_, key);
  }
  [[noreturn]] void unsupported(const std::string& key, const std::string& why) const {
    throw Error(ErrorCode::kUnsupported, why, source_, key);
  }

 private:
  static std::string describe(const json& v) {
    std::string s = v.dump();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return std::string(v.type_name()) + " " + s;
  }
  const json& j_;
  std::string source_;
};

void check_positive(const ConfigReader& r, const char* key, std::int64_t value) {
  if (value <= 0) r.fail(key, "must be positive, got " + std::to_string(value));
}

}  // namespace

bool ModelConfig::is_moe_layer(std::int64_t layer) const {
  const bool dense_listed = std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end();
  return !dense_listed && num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source, Holds holds) {
  if (!j.is_object()) throw Error(ErrorCode::kFormat, "config must be a JSON object", source);
  ConfigReader r(j, source);
  ModelConfig c;

  r.string("model_type", c.model_type);
  if (c.model_type != "qwen3_moe") {
    r.unsupported("model_type", "moeslim supports 'qwen3_moe' models, not '" + c.model_type + "'");
  }
  r.integer("vocab_size", c.vocab_size, true);
  r.integer("hidden_size", c.hidden_size, true);
  r.integer("num_hidden_layers", c.num_hidden_layers, true);
  r.integer("num_attention_heads", c.num_attention_heads, true);
  r.integer("num_key_value_heads", c.num_key_value_heads);
  r.integer("head_dim", c.head_dim);
  r.integer("intermediate_size", c.intermediate_size);
  r.integer("moe_intermediate_size", c.moe_intermediate_size);
  // transformers v5 may write num_local_experts (an attribute_map alias).
  if (j.contains("num_experts") && !j["num_experts"].is_null()) {
    r.integer("num_experts", c.num_experts);
  } else {
    r.integer("num_local_experts", c.num_experts);
  }
  r.integer("num_experts_per_tok", c.num_experts_per_tok);
  r.boolean("norm_topk_prob", c.norm_topk_prob);
  r.integer("decoder_sparse_step", c.decoder_sparse_step);
  r.integer_list("mlp_only_layers", c.mlp_only_layers);
  r.number("rms_norm_eps", c.rms_norm_eps);
  // transformers v5 may nest rope_theta in rope_parameters.
  if (const json* rp = r.find("rope_parameters", false); rp != nullptr && !j.contains("rope_theta")) {
    if (!rp->is_object()) r.fail("rope_parameters", "must be an object");
    ConfigReader(*rp, source).number("rope_theta", c.rope_theta);
    std::string rope_type = "default";
    ConfigReader(*rp, source).string("rope_type", rope_type);
    if (rope_type != "default") {
      r.unsupported("rope_parameters.rope_type", "only the default RoPE is implemented, not '" + rope_type + "'");
    }
  } else {
    r.number("rope_theta", c.rope_theta);
  }
  r.boolean("tie_word_embeddings", c.tie_word_embeddings);
  r.boolean("attention_bias", c.attention_bias);
  r.integer("max_position_embeddings", c.max_position_embeddings);
  if (j.contains("torch_dtype")) {
    r.string("torch_dtype", c.torch_dtype);
  } else {
    r.string("dtype", c.torch_dtype);
  }

  std::string hidden_act = "silu";
  r.string("hidden_act", hidden_act);
  if (hidden_act != "silu") r.unsupported("hidden_act", "only 'silu' is implemented, not '" + hidden_act + "'");

  if (const json* rs = r.find("rope_scaling", false); rs != nullptr) {
    if (!rs->is_object()) r.fail("rope_scaling", "must be null or an object");
    std::string type;
    if (auto it = rs->find("rope_type"); it != rs->end() && it->is_string()) type = it->get<std::string>();
    if (auto it = rs->find("type"); type.empty() && it != rs->end() && it->is_string()) type = it->get<std::string>();
    if (type != "default") {
      r.unsupported("rope_scaling", "RoPE scaling '" + (type.empty() ? rs->dump() : type) +
                                        "' is not implemented; remove it from config.json for calibration "
                                        "(quantization does not depend on it at calibration lengths)");
    }
  }
  bool use_sliding_window = false;
  r.boolean("use_sliding_window", use_sliding_window);
  if (use_sliding_window) r.unsupported("use_sliding_window", "sliding-window attention is not implemented");
  if (c.attention_bias) r.unsupported("attention_bias", "q/k/v/o biases are not implemented (no Qwen3 model has them)");
  if (const json* qc = r.find("quantization_config", false); qc != nullptr && holds == Holds::kFloatModel) {
    r.unsupported("quantization_config", "the checkpoint is already quantized; moeslim needs bf16/f16/f32 weights");
  }

  check_positive(r, "vocab_size", c.vocab_size);
  check_positive(r, "hidden_size", c.hidden_size);
  check_positive(r, "num_hidden_layers", c.num_hidden_layers);
  check_positive(r, "num_attention_heads", c.num_attention_heads);
  check_positive(r, "num_key_value_heads", c.num_key_value_heads);
  check_positive(r, "decoder_sparse_step", c.decoder_sparse_step);
  // Calibration truncates prompts to it; 0 or less would silently mean "no limit".
  check_positive(r, "max_position_embeddings", c.max_position_embeddings);
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      r.fail("num_attention_heads", "does not divide hidden_size " + std::to_string(c.hidden_size) +
                                        " and config.json gives no head_dim");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  check_positive(r, "head_dim", c.head_dim);
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    r.fail("num_key_value_heads", "must divide num_attention_heads " + std::to_string(c.num_attention_heads) +
                                      ", got " + std::to_string(c.num_key_value_heads));
  }
  if (c.num_experts < 0) r.fail("num_experts", "must not be negative");
  if (c.num_experts > 0) {
    check_positive(r, "moe_intermediate_size", c.moe_intermediate_size);
    check_positive(r, "num_experts_per_tok", c.num_experts_per_tok);
    if (c.num_experts_per_tok > c.num_experts) {
      r.fail("num_experts_per_tok", "top-k " + std::to_string(c.num_experts_per_tok) + " exceeds num_experts " +
                                        std::to_string(c.num_experts));
    }
  }
  bool any_dense = false;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) any_dense = any_dense || !c.is_moe_layer(l);
  if (any_dense) check_positive(r, "intermediate_size", c.intermediate_size);
  if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive");
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& model_dir, Holds holds) {
  const auto path = model_dir / "config.json";
  // A missing file is a missing part of the model (kNotFound), not a failed read (kIo).
  std::error_code ec;
  if (!std::filesystem::exists(model_dir, ec)) {
    throw Error(ErrorCode::kNotFound, "model directory does not exist", model_dir.string());
  }
  if (!std::filesystem::is_directory(model_dir, ec)) {
    throw Error(ErrorCode::kInvalidArgument, "model path is not a directory", model_dir.string());
  }
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorCode::kNotFound, "no config.json in the model directory", path.string());
  }
  return from_json(io::read_json_file(path), path.string(), holds);
}

void ModelConfig::limit_layers(std::int64_t layer_count) {
  if (layer_count < 1 || layer_count > num_hidden_layers) {
    throw Error(ErrorCode::kInvalidArgument,
                "must be between 1 and the model's " + std::to_string(num_hidden_layers) + " layers, got " +
                    std::to_string(layer_count),
                "", "--layer_count");
  }
  num_hidden_layers = layer_count;
}

std::string layer_prefix(std::int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

std::vector<ExpectedTensor> expected_layer_tensors(const ModelConfig& c, std::int64_t layer) {
  const std::string p = layer_prefix(layer);
  const std::int64_t H = c.hidden_size;
  std::vector<ExpectedTensor> out = {
      {p + "input_layernorm.weight", {H}},
      {p + "self_attn.q_proj.weight", {c.q_width(), H}},
      {p + "self_attn.k_proj.weight", {c.kv_width(), H}},
      {p + "self_attn.v_proj.weight", {c.kv_width(), H}},
      {p + "self_attn.o_proj.weight", {H, c.q_width()}},
      {p + "self_attn.q_norm.weight", {c.head_dim}},
      {p + "self_attn.k_norm.weight", {c.head_dim}},
      {p + "post_attention_layernorm.weight", {H}},
  };
  if (c.is_moe_layer(layer)) {
    const std::int64_t I = c.moe_intermediate_size;
    out.push_back({p + "mlp.gate.weight", {c.num_experts, H}});
    for (std::int64_t e = 0; e < c.num_experts; ++e) {
      const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
      out.push_back({ep + "gate_proj.weight", {I, H}});
      out.push_back({ep + "up_proj.weight", {I, H}});
      out.push_back({ep + "down_proj.weight", {H, I}});
    }
  } else {
    const std::int64_t I = c.intermediate_size;
    out.push_back({p + "mlp.gate_proj.weight", {I, H}});
    out.push_back({p + "mlp.up_proj.weight", {I, H}});
    out.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  return out;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out = {{"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}}};
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto layer = expected_layer_tensors(c, l);
    out.insert(out.end(), std::make_move_iterator(layer.begin()), std::make_move_iterator(layer.end()));
  }
  out.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return out;
}

}  // namespace moeslim::model
