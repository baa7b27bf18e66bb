#include "formats/compressed_tensors/reader.h"

#include <regex>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/hf_directory.h"
#include "formats/module_names.h"
#include "io/checkpoint.h"
#include "io/json_file.h"
#include "model/layer_loader.h"
#include "model/module_id.h"
#include "model/quantized_linear.h"
#include "quant/quant_types.h"

namespace moeslim::formats::compressed_tensors {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A target or ignore entry: a module name, a "re:" pattern (Python's re.match: anchored at the start only) or
// the class name "Linear" (every linear).
struct Matcher {
  std::string text;
  std::optional<std::regex> pattern;
  bool matches(const std::string& module) const {
    if (pattern) return std::regex_search(module, *pattern, std::regex_constants::match_continuous);
    return module == text;
  }
};

struct Group {
  quant::QuantScheme scheme;
  std::vector<Matcher> names;  // its targets other than "Linear"
  bool linear_class = false;   // it targets "Linear"
};

}  // namespace

struct CtLayerSource::Impl {
  Impl(const fs::path& dir, model::FloatPrecision precision)
      : dir(dir), config_file(dir / kConfigFile), ckpt(io::Checkpoint::open(dir)),
        config(model::ModelConfig::load(dir, model::ModelConfig::Holds::kQuantizedOutput)), precision(precision) {
    parse(io::read_ordered_json_file(config_file));
  }

  fs::path dir, config_file;
  io::Checkpoint ckpt;
  model::ModelConfig config;
  model::FloatPrecision precision;
  std::vector<Group> groups;
  std::vector<Matcher> ignore;

  [[noreturn]] void fail(ErrorCode code, const std::string& what, const std::string& key) const {
    throw Error(code, what, config_file.string(), key);
  }

  Matcher matcher(const json& entry, const std::string& key) const {
    if (!entry.is_string()) fail(ErrorCode::kFormat, "must be a string", key);
    Matcher m{entry.get<std::string>(), std::nullopt};
    if (m.text.rfind("re:", 0) == 0) {
      try {
        m.pattern.emplace(m.text.substr(3));
      } catch (const std::regex_error& e) {
        fail(ErrorCode::kFormat, fmt::format("'{}' is not a regular expression moeslim reads: {}", m.text, e.what()),
             key);
      }
    }
    return m;
  }

  // `args` must hold `key` equal to `want` (a JSON value); `what` says what the runtime would need.
  void require(const json& args, const std::string& path, const char* key, const json& want) const {
    const auto it = args.find(key);
    const json got = it == args.end() ? json(nullptr) : *it;
    if (got != want) {
      fail(ErrorCode::kUnsupported,
           fmt::format("{} is {}; moeslim reads int-quantized channel weights with dynamic per-token int8 inputs "
                       "({} = {})",
                       key, got.dump(), key, want.dump()),
           path + "." + key);
    }
  }

  void parse(const json& root) {
    const auto q = root.find("quantization_config");
    if (q == root.end() || !q->is_object()) fail(ErrorCode::kFormat, "missing or not an object", "quantization_config");
    if (q->value("quant_method", "") != "compressed-tensors") {
      fail(ErrorCode::kFormat, "is not compressed-tensors", "quantization_config.quant_method");
    }
    const std::string top_format = q->value("format", "");
    const auto cg = q->find("config_groups");
    if (cg == q->end() || !cg->is_object() || cg->empty()) {
      fail(ErrorCode::kFormat, "must be a non-empty object", "quantization_config.config_groups");
    }
    for (const auto& [name, g] : cg->items()) {
      const std::string path = "quantization_config.config_groups." + name;
      if (!g.is_object()) fail(ErrorCode::kFormat, "must be an object", path);
      const std::string format = g.contains("format") ? g["format"].get<std::string>() : top_format;
      if (format != "int-quantized") {
        fail(ErrorCode::kUnsupported, fmt::format("format '{}': moeslim reads int-quantized", format),
             g.contains("format") ? path + ".format" : "quantization_config.format");
      }
      const json weights = g.value("weights", json(nullptr));
      if (!weights.is_object()) fail(ErrorCode::kFormat, "must be an object", path + ".weights");
      const int bits = weights.value("num_bits", 0);
      if (bits != 4 && bits != 8) fail(ErrorCode::kUnsupported, "must be 4 or 8", path + ".weights.num_bits");
      require(weights, path + ".weights", "type", "int");
      require(weights, path + ".weights", "symmetric", true);
      require(weights, path + ".weights", "strategy", "channel");
      require(weights, path + ".weights", "dynamic", false);
      require(weights, path + ".weights", "actorder", nullptr);
      const json inputs = g.value("input_activations", json(nullptr));
      if (!inputs.is_object()) {
        fail(ErrorCode::kUnsupported, "weight-only int-quantized layers have no vLLM scheme; moeslim reads dynamic "
                                      "per-token int8 inputs", path + ".input_activations");
      }
      for (const auto& [key, want] : std::vector<std::pair<const char*, json>>{
               {"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "token"}, {"dynamic", true}}) {
        require(inputs, path + ".input_activations", key, want);
      }
      Group group{bits == 4 ? quant::QuantScheme::kW4A8Dynamic : quant::QuantScheme::kW8A8Dynamic, {}, false};
      const json targets = g.value("targets", json(nullptr));
      if (!targets.is_array() || targets.empty()) {
        fail(ErrorCode::kFormat, "must be a non-empty list", path + ".targets");
      }
      for (std::size_t i = 0; i < targets.size(); ++i) {
        if (targets[i] == "Linear") {
          group.linear_class = true;
        } else {
          group.names.push_back(matcher(targets[i], fmt::format("{}.targets[{}]", path, i)));
        }
      }
      groups.push_back(std::move(group));
    }
    const json ig = q->value("ignore", json::array());
    if (!ig.is_array()) fail(ErrorCode::kFormat, "must be a list", "quantization_config.ignore");
    for (std::size_t i = 0; i < ig.size(); ++i) {
      ignore.push_back(matcher(ig[i], fmt::format("quantization_config.ignore[{}]", i)));
    }
  }

  // vLLM's order: ignore, then a target naming or matching the module, then the class name.
  quant::QuantScheme scheme_of(const std::string& module) const {
    for (const Matcher& m : ignore) {
      if (m.matches(module)) return quant::QuantScheme::kFloat;
    }
    for (const Group& g : groups) {
      for (const Matcher& m : g.names) {
        if (m.matches(module)) return g.scheme;
      }
    }
    for (const Group& g : groups) {
      if (g.linear_class) return g.scheme;
    }
    fail(ErrorCode::kFormat, "no config group targets " + module + " and ignore does not list it (vLLM refuses it)",
         "quantization_config");
  }

  // A stored tensor of `dtype` and `shape`; kFormat naming the directory and the tensor otherwise.
  Tensor stored(const std::string& name, DType dtype, const Shape& shape) const {
    if (!ckpt.contains(name)) throw Error(ErrorCode::kNotFound, "missing from the checkpoint", dir.string(), name);
    const io::TensorInfo& info = ckpt.info(name);
    if (info.dtype != dtype || info.shape != shape) {
      throw Error(ErrorCode::kFormat,
                  fmt::format("is {} {}, expected {} {}", dtype_name(info.dtype), shape_to_string(info.shape),
                              dtype_name(dtype), shape_to_string(shape)),
                  dir.string(), name);
    }
    return ckpt.tensor(name);
  }

  // weight_scale [out, 1] in a float dtype, as float32 [out] (vLLM's parameter holds float32).
  Tensor scale(const std::string& module, std::int64_t out) const {
    return model::read_checked(ckpt, tensor_name(module, "weight_scale"), {out, 1}).to_f32().reshaped({out});
  }

  std::unique_ptr<model::Linear> make_linear(const model::ModuleId& id, const Shape& shape) const {
    const std::string module = model::hf_module_name(id);
    const std::string weight_name = tensor_name(module, "weight");
    if (ckpt.contains(tensor_name(module, "bias"))) {
      throw Error(ErrorCode::kUnsupported, "a linear bias is not part of vLLM's Qwen3-MoE", dir.string(),
                  tensor_name(module, "bias"));
    }
    const quant::QuantScheme scheme = scheme_of(module);
    const bool router = id.role == model::ModuleRole::kRouter;
    if (scheme == quant::QuantScheme::kFloat) {
      return model::make_float_linear(model::read_checked(ckpt, weight_name, shape), Tensor(),
                                      router ? model::FloatPrecision::kF32 : precision);
    }
    if (router) {
      fail(ErrorCode::kUnsupported, "the router " + module + " must be listed in ignore (it stays float)",
           "quantization_config.ignore");
    }
    const Tensor weight = stored(weight_name, DType::kI8, shape);
    const Tensor s = scale(module, shape[0]);
    if (scheme == quant::QuantScheme::kW8A8Dynamic) return model::make_w8a8_dynamic_linear(weight, s);
    try {
      return model::make_w4a8_dynamic_linear_from_codes(weight, s);  // refuses a code outside [-8, 7]
    } catch (const Error& e) {
      throw Error(ErrorCode::kFormat, e.detail(), dir.string(), weight_name);
    }
  }
};

CtLayerSource::CtLayerSource(const fs::path& dir, model::FloatPrecision precision, std::int64_t layer_count)
    : impl_(std::make_unique<Impl>(dir, precision)) {
  if (layer_count > 0) impl_->config.limit_layers(layer_count);
}

CtLayerSource::~CtLayerSource() = default;

const model::ModelConfig& CtLayerSource::config() const { return impl_->config; }

std::string CtLayerSource::scheme_name(const std::string& module) const {
  return quant::quant_scheme_name(impl_->scheme_of(module));
}

model::DecoderLayer CtLayerSource::load_layer(std::int64_t layer) {
  Impl& m = *impl_;
  if (layer < 0 || layer >= m.config.num_hidden_layers) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("layer {} is outside the model's {} layers", layer,
                                                         m.config.num_hidden_layers),
                m.dir.string());
  }
  std::map<std::string, Shape> linear_shape;
  for (const model::ModuleId& id : model::layer_linears(m.config, layer)) linear_shape[model::hf_module_name(id)];
  model::LayerTensors tensors;
  for (const model::ExpectedTensor& e : model::expected_layer_tensors(m.config, layer)) {
    const std::string module = e.name.substr(0, e.name.size() - std::string(".weight").size());
    if (const auto it = linear_shape.find(module); it != linear_shape.end()) {
      it->second = e.shape;
      tensors.emplace(e.name, Tensor());  // read by make_linear, by its scheme
      continue;
    }
    tensors.emplace(e.name, model::read_checked(m.ckpt, e.name, e.shape));
  }
  return model::build_layer(m.config, layer, tensors,
                            [&](const model::ModuleId& id, const Tensor& /*weight*/, const Tensor& /*bias*/) {
                              return m.make_linear(id, linear_shape.at(model::hf_module_name(id)));
                            });
}

void CtLayerSource::release_layer(std::int64_t layer) {
  for (const std::string& name : impl_->ckpt.names_with_prefix(model::layer_prefix(layer))) impl_->ckpt.release(name);
}

Tensor CtLayerSource::embedding() {
  const model::ModelConfig& c = impl_->config;
  return model::read_checked(impl_->ckpt, "model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
}

Tensor CtLayerSource::final_norm() {
  return model::to_f32_vector(model::read_checked(impl_->ckpt, "model.norm.weight", {impl_->config.hidden_size}));
}

std::unique_ptr<model::Linear> CtLayerSource::lm_head() {
  const model::ModelConfig& c = impl_->config;
  const std::string name = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return model::make_float_linear(model::read_checked(impl_->ckpt, name, {c.vocab_size, c.hidden_size}), Tensor(),
                                  model::FloatPrecision::kF32);
}

bool holds_compressed_tensors(const fs::path& dir) {
  try {
    const json root = io::read_ordered_json_file(dir / kConfigFile);
    const auto q = root.find("quantization_config");
    return q != root.end() && q->is_object() && q->value("quant_method", "") == "compressed-tensors";
  } catch (const Error&) {
    return false;
  }
}

}  // namespace moeslim::formats::compressed_tensors
