#include "formats/compressed_tensors/reader.h"

#include <cstring>
#include <map>
#include <regex>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/compressed_tensors/int4_words.h"
#include "formats/compressed_tensors/quantization_config.h"
#include "formats/hf_directory.h"
#include "formats/module_names.h"
#include "io/checkpoint.h"
#include "io/json_file.h"
#include "model/layer_loader.h"
#include "model/module_id.h"
#include "model/quantized_linear.h"
#include "model/weight_only_linear.h"
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
  quant::WeightGrid grid;      // W4A16's
  std::vector<Matcher> names;  // its targets other than "Linear"
  bool linear_class = false;   // it targets "Linear"
};

// args[key], or null when absent (or args is not an object).
json value_of(const json& args, const char* key) {
  if (!args.is_object()) return nullptr;
  const auto it = args.find(key);
  return it == args.end() ? json(nullptr) : *it;
}

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

  // `args` must hold `key` equal to one of `want` (JSON values).
  void require(const json& args, const std::string& path, const char* key, const std::vector<json>& want) const {
    const json got = value_of(args, key);
    for (const json& w : want) {
      if (got == w) return;
    }
    std::vector<std::string> allowed;
    for (const json& w : want) allowed.push_back(w.dump());
    fail(ErrorCode::kUnsupported,
         fmt::format("{} is {}; moeslim reads int-quantized channel weights with dynamic per-token int8 inputs and "
                     "pack-quantized int4 weights with float inputs ({} = {})",
                     key, got.dump(), key, fmt::join(allowed, " or ")),
         path + "." + key);
  }

  // A group's weights and inputs as one of the schemes moeslim runs.
  Group group_scheme(const std::string& format, const std::string& format_key, const json& g,
                     const std::string& path) const {
    const json weights = value_of(g, "weights");
    if (!weights.is_object()) fail(ErrorCode::kFormat, "must be an object", path + ".weights");
    const json inputs = value_of(g, "input_activations");
    const std::string w = path + ".weights";
    require(weights, w, "type", {"int"});
    require(weights, w, "dynamic", {false});
    if (format == "pack-quantized") {
      require(weights, w, "num_bits", {4});
      require(weights, w, "strategy", {"group", "channel"});
      require(weights, w, "symmetric", {true, false});
      // "weight"/"static" order GPTQ's columns but keep contiguous groups: the same tensors as no actorder.
      require(weights, w, "actorder", {nullptr, "weight", "static"});
      if (!inputs.is_null()) {
        fail(ErrorCode::kUnsupported, "pack-quantized int4 weights with quantized inputs have no vLLM scheme moeslim "
                                      "runs; moeslim reads them weight-only (input_activations null)",
             path + ".input_activations");
      }
      Group group{quant::QuantScheme::kW4A16, {}, {}, false};
      group.grid.symmetric = value_of(weights, "symmetric") == true;
      if (value_of(weights, "strategy") == "group") {
        const json gs = value_of(weights, "group_size");
        if (!gs.is_number_integer() || gs.get<std::int64_t>() < 1 || gs.get<std::int64_t>() > (1 << 20)) {
          fail(ErrorCode::kFormat, "must be a positive integer for strategy group, got " + gs.dump(),
               w + ".group_size");
        }
        group.grid.group_size = gs.get<std::int64_t>();
      }
      return group;
    }
    if (format != "int-quantized") {
      fail(ErrorCode::kUnsupported, fmt::format("format '{}': moeslim reads int-quantized and pack-quantized", format),
           format_key);
    }
    require(weights, w, "num_bits", {4, 8});
    require(weights, w, "symmetric", {true});
    require(weights, w, "strategy", {"channel"});
    require(weights, w, "actorder", {nullptr});
    if (!inputs.is_object()) {
      fail(ErrorCode::kUnsupported, "weight-only int-quantized layers have no vLLM scheme; moeslim reads dynamic "
                                    "per-token int8 inputs", path + ".input_activations");
    }
    for (const auto& [key, want] : std::vector<std::pair<const char*, json>>{
             {"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "token"}, {"dynamic", true}}) {
      require(inputs, path + ".input_activations", key, {want});
    }
    const bool int4 = value_of(weights, "num_bits") == 4;
    return {int4 ? quant::QuantScheme::kW4A8Dynamic : quant::QuantScheme::kW8A8Dynamic, {}, {}, false};
  }

  void parse(const json& root) {
    const auto q = root.find("quantization_config");
    if (q == root.end() || !q->is_object()) fail(ErrorCode::kFormat, "missing or not an object", "quantization_config");
    if (value_of(*q, "quant_method") != "compressed-tensors") {
      fail(ErrorCode::kFormat, "is not compressed-tensors", "quantization_config.quant_method");
    }
    const json top_format = value_of(*q, "format");
    const auto cg = q->find("config_groups");
    if (cg == q->end() || !cg->is_object() || cg->empty()) {
      fail(ErrorCode::kFormat, "must be a non-empty object", "quantization_config.config_groups");
    }
    for (const auto& [name, g] : cg->items()) {
      const std::string path = "quantization_config.config_groups." + name;
      if (!g.is_object()) fail(ErrorCode::kFormat, "must be an object", path);
      const bool own_format = g.contains("format");
      const json format = own_format ? g["format"] : top_format;
      const std::string format_key = own_format ? path + ".format" : "quantization_config.format";
      if (!format.is_string()) fail(ErrorCode::kFormat, "must be a string, got " + format.dump(), format_key);
      Group group = group_scheme(format.get<std::string>(), format_key, g, path);
      const json targets = value_of(g, "targets");
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
    const json ig = q->contains("ignore") ? (*q)["ignore"] : json::array();
    if (!ig.is_array()) fail(ErrorCode::kFormat, "must be a list", "quantization_config.ignore");
    for (std::size_t i = 0; i < ig.size(); ++i) {
      ignore.push_back(matcher(ig[i], fmt::format("quantization_config.ignore[{}]", i)));
    }
  }

  // vLLM's order: ignore, then a target naming or matching the module, then the class name. nullptr: float.
  const Group* group_of(const std::string& module) const {
    for (const Matcher& m : ignore) {
      if (m.matches(module)) return nullptr;
    }
    for (const Group& g : groups) {
      for (const Matcher& m : g.names) {
        if (m.matches(module)) return &g;
      }
    }
    for (const Group& g : groups) {
      if (g.linear_class) return &g;
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

  // A pack-quantized int4 linear (weight-only), dequantized per group in its scales' dtype as vLLM's WNA16
  // kernels do in the model's (moeslim writes the scales in it).
  std::unique_ptr<model::Linear> w4a16_linear(const std::string& module, const quant::WeightGrid& grid,
                                              const Shape& shape) const {
    const std::int64_t out = shape[0], in = shape[1];
    const std::string scale_name = tensor_name(module, "weight_scale");
    DType scale_dtype = DType::kBF16;  // what a missing or non-float scale is then reported against
    if (ckpt.contains(scale_name) && is_float_dtype(ckpt.info(scale_name).dtype)) {
      scale_dtype = ckpt.info(scale_name).dtype;
    }
    std::vector<CtTensor> layout;
    try {
      layout = ct_linear_tensors(ct_scheme(quant::QuantScheme::kW4A16, grid, module), out, in, scale_dtype, module);
    } catch (const Error& e) {
      throw Error(ErrorCode::kUnsupported, e.detail(), config_file.string(), module);
    }
    std::map<std::string, Tensor> t;
    for (const CtTensor& c : layout) t[c.suffix] = stored(tensor_name(module, c.suffix), c.dtype, c.shape);
    const std::string shape_name = tensor_name(module, "weight_shape");
    std::int64_t dims[2];
    std::memcpy(dims, t.at("weight_shape").bytes(), sizeof dims);  // a view need not be aligned
    if (dims[0] != out || dims[1] != in) {
      throw Error(ErrorCode::kFormat, fmt::format("holds [{}, {}], the weight is {}", dims[0], dims[1],
                                                  shape_to_string(shape)),
                  dir.string(), shape_name);
    }
    const std::string weight_name = tensor_name(module, "weight_packed");
    try {
      const Tensor codes = unpack_int4_columns(t.at("weight_packed"), in);
      Tensor zero;
      if (!grid.symmetric) zero = unpack_int4_rows_from_words(t.at("weight_zero_point"), out).to_f32();
      return model::make_w4a16_linear(codes, t.at("weight_scale").to_f32(), zero, Tensor(), scale_dtype, precision);
    } catch (const Error& e) {
      throw Error(ErrorCode::kFormat, e.detail(), dir.string(), weight_name);
    }
  }

  std::unique_ptr<model::Linear> make_linear(const model::ModuleId& id, const Shape& shape) const {
    const std::string module = model::hf_module_name(id);
    const std::string weight_name = tensor_name(module, "weight");
    if (ckpt.contains(tensor_name(module, "bias"))) {
      throw Error(ErrorCode::kUnsupported, "a linear bias is not part of vLLM's Qwen3-MoE", dir.string(),
                  tensor_name(module, "bias"));
    }
    const Group* group = group_of(module);
    const bool router = id.role == model::ModuleRole::kRouter;
    if (group == nullptr) {
      return model::make_float_linear(model::read_checked(ckpt, weight_name, shape), Tensor(),
                                      router ? model::FloatPrecision::kF32 : precision);
    }
    if (router) {
      fail(ErrorCode::kUnsupported, "the router " + module + " must be listed in ignore (it stays float)",
           "quantization_config.ignore");
    }
    if (group->scheme == quant::QuantScheme::kW4A16) return w4a16_linear(module, group->grid, shape);
    const Tensor weight = stored(weight_name, DType::kI8, shape);
    const Tensor s = scale(module, shape[0]);
    if (group->scheme == quant::QuantScheme::kW8A8Dynamic) return model::make_w8a8_dynamic_linear(weight, s);
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
  const Group* g = impl_->group_of(module);
  return quant::quant_scheme_name(g == nullptr ? quant::QuantScheme::kFloat : g->scheme);
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
    return q != root.end() && value_of(*q, "quant_method") == "compressed-tensors";
  } catch (const Error&) {
    return false;
  }
}

}  // namespace moeslim::formats::compressed_tensors
