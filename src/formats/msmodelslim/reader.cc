#include "formats/msmodelslim/reader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "core/error.h"
#include "formats/module_names.h"
#include "formats/msmodelslim/float_encoding.h"
#include "io/json_file.h"
#include "io/safetensors_reader.h"
#include "model/layer_loader.h"
#include "model/quantized_linear.h"

namespace moeslim::formats::msmodelslim {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string dtype_str(const Tensor& t) { return std::string(dtype_name(t.dtype())); }

bool is_float(DType d) { return d == DType::kBF16 || d == DType::kF16 || d == DType::kF32; }

// The shards of a quantized directory, found through its index (io::Checkpoint only knows
// model.safetensors.index.json; msModelSlim names the index after the shards). Shards are opened lazily.
class ShardSet {
 public:
  explicit ShardSet(const fs::path& dir) {
    std::vector<fs::path> indexes, singles;
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (ends_with(name, ".safetensors.index.json")) indexes.push_back(e.path());
      if (ends_with(name, ".safetensors")) singles.push_back(e.path());
    }
    if (indexes.size() > 1) {
      std::sort(indexes.begin(), indexes.end());
      throw Error(ErrorCode::kFormat,
                  "more than one shard index (" + indexes[0].filename().string() + ", " +
                      indexes[1].filename().string() + "); cannot tell which weights to load",
                  dir.string());
    }
    if (indexes.size() == 1) {
      read_index(indexes[0]);
    } else if (singles.size() == 1) {
      source_ = singles[0];
      const std::string file = singles[0].filename().string();
      for (const io::TensorInfo& t : open(file).tensors()) shard_of_.emplace(t.name, file);
    } else {
      throw Error(ErrorCode::kNotFound,
                  "no *.safetensors.index.json and " +
                      std::string(singles.empty() ? "no" : "more than one") + " *.safetensors file",
                  dir.string());
    }
  }

  const fs::path& source() const { return source_; }  // the index (or the lone file): where names come from
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  const std::map<std::string, std::string>& weight_map() const { return shard_of_; }

  fs::path path_of(const std::string& name) const {
    auto it = shard_of_.find(name);
    return it == shard_of_.end() ? source_ : source_.parent_path() / it->second;
  }

  // A read-only view; kNotFound naming the index and the tensor when the index does not list it.
  Tensor tensor(const std::string& name) {
    auto it = shard_of_.find(name);
    if (it == shard_of_.end()) throw Error(ErrorCode::kNotFound, "tensor is not in the shards", source_.string(), name);
    return open(it->second).tensor(name);
  }

  void release(const std::string& name) {
    auto it = shard_of_.find(name);
    if (it != shard_of_.end()) open(it->second).release(name);
  }

 private:
  void read_index(const fs::path& index) {
    source_ = index;
    const nlohmann::json j = io::read_json_file(index);
    const auto wm = j.is_object() ? j.find("weight_map") : j.end();
    if (!j.is_object() || wm == j.end() || !wm->is_object()) {
      throw Error(ErrorCode::kFormat, "shard index has no \"weight_map\" object", index.string(), "weight_map");
    }
    std::set<std::string> files;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) throw Error(ErrorCode::kFormat, "weight_map values must be file names", index.string(), name);
      shard_of_.emplace(name, file.get<std::string>());
      files.insert(file.get<std::string>());
    }
    for (const std::string& f : files) {
      if (!fs::is_regular_file(index.parent_path() / f)) {
        throw Error(ErrorCode::kNotFound, "shard listed in the index is missing", index.string(), f);
      }
    }
  }

  io::SafetensorsFile& open(const std::string& file) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = files_.find(file);
    if (it == files_.end()) {
      const fs::path dir = source_.has_parent_path() ? source_.parent_path() : fs::path(".");
      it = files_.emplace(file, std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(dir / file))).first;
    }
    return *it->second;
  }

  fs::path source_;
  std::map<std::string, std::string> shard_of_;  // tensor name -> shard file name
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<io::SafetensorsFile>> files_;
};

// Tensor entries of a description: keys with a dot ("model.norm.weight"); dot-less keys ("version",
// "model_quant_type", "group_size", "metadata", ...) are the header.
std::map<std::string, std::string> read_description(const fs::path& path) {
  const nlohmann::json j = io::read_json_file(path);
  if (!j.is_object()) throw Error(ErrorCode::kFormat, "description must be a JSON object", path.string());
  std::map<std::string, std::string> types;
  for (const auto& [key, value] : j.items()) {
    if (key.find('.') == std::string::npos) continue;
    if (!value.is_string()) throw Error(ErrorCode::kFormat, "a tensor's type must be a string", path.string(), key);
    types.emplace(key, value.get<std::string>());
  }
  return types;
}

float bits_to_float(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

struct QuantizedLayerSource::Impl {
  fs::path dir;
  model::ModelConfig config;
  model::FloatPrecision precision;
  const LayoutRules& rules;
  fs::path description_path;
  std::map<std::string, std::string> types;
  ShardSet shards;

  // config.json may carry a quantization_config (--mindie_format writes one): it is a quantized output's.
  Impl(const fs::path& d, model::FloatPrecision p, const LayoutRules& r)
      : dir(d), config(model::ModelConfig::load(d, model::ModelConfig::Holds::kQuantizedOutput)), precision(p),
        rules(r), description_path(d / r.description_file), types(read_description(description_path)), shards(d) {
    for (const auto& [name, type] : types) {
      if (!shards.contains(name)) {
        throw Error(ErrorCode::kNotFound, "described tensor is missing from the shards (" +
                                            shards.source().filename().string() + ")",
                    description_path.string(), name);
      }
    }
  }

  [[noreturn]] void fail(ErrorCode code, const std::string& why, const std::string& name) const {
    throw Error(code, why, shards.path_of(name).string(), name);
  }

  Tensor require(const std::string& name) {
    if (!shards.contains(name)) {
      throw Error(ErrorCode::kNotFound, "tensor required by " + description_path.filename().string() +
                                            " and config.json is missing from the shards",
                  shards.source().string(), name);
    }
    return shards.tensor(name);
  }

  void check_shape(const Tensor& t, const Shape& shape, const std::string& name) const {
    if (t.shape() != shape) {
      fail(ErrorCode::kFormat, "shape " + shape_to_string(t.shape()) + " does not match " + shape_to_string(shape) +
                                   " implied by config.json",
           name);
    }
  }

  Tensor float_tensor(const std::string& name, const Shape& shape) {
    Tensor t = require(name);
    if (!is_float(t.dtype())) fail(ErrorCode::kFormat, "must be BF16, F16 or F32, not " + dtype_str(t), name);
    check_shape(t, shape, name);
    return t;
  }

  Tensor i8_tensor(const std::string& name, const Shape& shape) {
    Tensor t = require(name);
    if (t.dtype() != DType::kI8) fail(ErrorCode::kFormat, "quantized weight must be I8, not " + dtype_str(t), name);
    check_shape(t, shape, name);
    return t;
  }

  // A per-channel float vector written as [n] or [n, 1] (weight_scale is [out, 1]), as F32 [n].
  Tensor f32_vector(const std::string& name, std::int64_t n) {
    const Tensor t = require(name);
    if (!is_float(t.dtype())) fail(ErrorCode::kFormat, "must be BF16, F16 or F32, not " + dtype_str(t), name);
    if (t.shape() != Shape{n} && t.shape() != Shape{n, 1}) {
      fail(ErrorCode::kFormat, "shape " + shape_to_string(t.shape()) + " is neither [" + std::to_string(n) + "] nor [" +
                                   std::to_string(n) + ", 1]",
           name);
    }
    return t.to_f32().reshaped({n});
  }

  float f32_scalar(const std::string& name) {
    const Tensor t = require(name);
    if (!is_float(t.dtype()) || t.numel() != 1) {
      fail(ErrorCode::kFormat, "must be a one-element float tensor, got " + dtype_str(t) + " " +
                                   shape_to_string(t.shape()),
           name);
    }
    return t.to_f32().data<float>()[0];
  }

  // deq_scale: F32 [out], or for fp16 models I64 [out] holding the float32 bit pattern in its low 32 bits.
  Tensor deq_scale(const std::string& name, std::int64_t n) {
    const Tensor t = require(name);
    if (t.shape() != Shape{n}) fail(ErrorCode::kFormat, "shape must be [" + std::to_string(n) + "]", name);
    if (t.dtype() == DType::kF32) return t;
    if (t.dtype() != DType::kI64) fail(ErrorCode::kFormat, "must be F32 (or I64 for fp16 models), not " + dtype_str(t), name);
    Tensor out = Tensor::zeros(DType::kF32, {n});
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t v;
      std::memcpy(&v, t.bytes() + i * sizeof v, sizeof v);
      out.mutable_data<float>()[i] = bits_to_float(static_cast<std::uint32_t>(v));
    }
    return out;
  }

  Tensor i32_vector(const std::string& name, std::int64_t n) {
    const Tensor t = require(name);
    if (t.dtype() != DType::kI32 || t.shape() != Shape{n}) {
      fail(ErrorCode::kFormat, "must be I32 [" + std::to_string(n) + "], got " + dtype_str(t) + " " +
                                   shape_to_string(t.shape()),
           name);
    }
    return t;
  }

  // Symmetric weights only: a nonzero weight_offset would need a correction the loaders do not make.
  void check_zero_offset(const std::string& name) {
    if (shards.contains(name) && !all_zero(require(name))) {
      fail(ErrorCode::kUnsupported, "nonzero weight offsets (asymmetric weights) are not supported", name);
    }
  }

  const std::string& type_of(const std::string& tensor) const {
    auto it = types.find(tensor);
    if (it == types.end()) {
      throw Error(ErrorCode::kNotFound, "tensor has no entry in the description", description_path.string(), tensor);
    }
    return it->second;
  }

  // The scheme table's name for one of a linear's tensors; kInternal if the table gives the scheme no such
  // tensor, so the reader cannot look for a tensor the writer never writes.
  std::string part(const std::string& module, const SchemeRule& rule, std::string_view suffix) const {
    if (rule.find(suffix) == nullptr) {
      throw Error(ErrorCode::kInternal, "the scheme table has no " + std::string(suffix) + " for " + rule.type(),
                  description_path.string(), module);
    }
    return tensor_name(module, suffix);
  }

  // The per-channel weight scale as the loader holds it. vLLM-Ascend's W8A8_DYNAMIC method (w8a8_dynamic.py)
  // declares weight_scale in the model's dtype and copies the file's values into it, so the ascendV1-v1
  // layout's float32 scales are rounded to bf16 (fp16 for an fp16 model) at load time; the v0 layouts already
  // store them so. Its W4A8_DYNAMIC method keeps float32 scales.
  Tensor loaded_weight_scale(const std::string& module, const SchemeRule& rule, std::int64_t out) {
    Tensor scale = f32_vector(part(module, rule, "weight_scale"), out);
    if (rule.scheme != quant::QuantScheme::kW8A8Dynamic) return scale;
    if (config.torch_dtype == "float32") return scale;  // a float32 model's parameters hold them exactly
    const DType params_dtype = config.torch_dtype == "float16" ? DType::kF16 : DType::kBF16;
    return to_float_dtype(to_float_dtype(scale, params_dtype), DType::kF32);
  }

  std::unique_ptr<model::Linear> make_linear(const std::string& module, const Shape& shape, const Tensor& bias,
                                             bool is_router) {
    const std::string wname = tensor_name(module, "weight");
    const std::string& type = type_of(wname);
    const SchemeRule* rule = rules.scheme(type);
    if (rule == nullptr) {
      throw Error(ErrorCode::kUnsupported,
                  "quantization type '" + type + "' is not one the " + std::string(rules.name) + " layout holds",
                  description_path.string(), wname);
    }
    const ModuleDims dims{shape[0], shape[1], 0};
    const std::int64_t out = dims.out;
    if (rule->scheme == quant::QuantScheme::kFloat) {
      return model::make_float_linear(float_tensor(wname, shape), bias,
                                      is_router ? model::FloatPrecision::kF32 : precision);
    }
    if (is_router) {
      throw Error(ErrorCode::kUnsupported, "the router must be FLOAT, not " + type, description_path.string(), wname);
    }
    // The stored weight's shape: [out, in] int8 codes, or [out/2, in] for packed int4.
    const Shape stored = resolve_shape(rule->find("weight")->shape, dims);
    if (rule->scheme == quant::QuantScheme::kW4A8Dynamic && out % 2 != 0) {
      fail(ErrorCode::kFormat, "int4 packing needs an even output size", wname);
    }
    const Tensor weight = i8_tensor(wname, stored);
    check_zero_offset(part(module, *rule, "weight_offset"));
    switch (rule->scheme) {
      case quant::QuantScheme::kW8A8: {
        const std::string scale_name = part(module, *rule, "input_scale");
        const std::string offset_name = part(module, *rule, "input_offset");
        const float scale = f32_scalar(scale_name);
        const float offset = f32_scalar(offset_name);
        if (!(std::isfinite(scale) && scale > 0)) {
          fail(ErrorCode::kFormat, "must be finite and positive, got " + std::to_string(scale), scale_name);
        }
        if (!(offset >= -128 && offset <= 127 && offset == std::nearbyint(offset))) {
          fail(ErrorCode::kFormat, "must be an integer in [-128, 127], got " + std::to_string(offset), offset_name);
        }
        // The written float bias is deliberately unused: quant_bias already holds it (§4.6).
        return model::make_w8a8_static_linear(weight, scale, offset, deq_scale(part(module, *rule, "deq_scale"), out),
                                              i32_vector(part(module, *rule, "quant_bias"), out));
      }
      case quant::QuantScheme::kW8A8Dynamic:
        return model::make_w8a8_dynamic_linear(weight, loaded_weight_scale(module, *rule, out), bias);
      case quant::QuantScheme::kW4A8Dynamic:
        return model::make_w4a8_dynamic_linear(weight, loaded_weight_scale(module, *rule, out), bias);
      case quant::QuantScheme::kFloat:
      case quant::QuantScheme::kW4A16:  // no msModelSlim layout has it
        break;
    }
    throw Error(ErrorCode::kUnsupported, "quantization type '" + type + "' is not implemented by the runtime",
                description_path.string(), wname);
  }
};

QuantizedLayerSource::QuantizedLayerSource(const fs::path& dir, Layout layout, model::FloatPrecision precision,
                                           std::int64_t layer_count)
    : impl_(std::make_unique<Impl>(dir, precision, layout_rules(layout))) {
  if (layer_count > 0) impl_->config.limit_layers(layer_count);
}

QuantizedLayerSource::~QuantizedLayerSource() = default;

const model::ModelConfig& QuantizedLayerSource::config() const { return impl_->config; }

model::DecoderLayer QuantizedLayerSource::load_layer(std::int64_t layer) {
  Impl& m = *impl_;
  if (layer < 0 || layer >= m.config.num_hidden_layers) {
    throw Error(ErrorCode::kInvalidArgument, "layer " + std::to_string(layer) + " is outside the model's " +
                                                 std::to_string(m.config.num_hidden_layers) + " layers",
                m.dir.string());
  }
  std::set<std::string> linear_set;
  for (const model::ModuleId& id : model::layer_linears(m.config, layer)) linear_set.insert(model::hf_module_name(id));
  std::map<std::string, Shape> weight_shape;
  model::LayerTensors tensors;
  for (const model::ExpectedTensor& e : model::expected_layer_tensors(m.config, layer)) {
    const std::string module = e.name.substr(0, e.name.size() - std::string(".weight").size());
    const std::string bias = module + ".bias";
    if (linear_set.count(module) != 0) {
      weight_shape.emplace(module, e.shape);
      // Only the optional float bias goes through build_layer; the weight is read by make_linear by type.
      if (m.shards.contains(bias)) tensors.emplace(bias, m.float_tensor(bias, {e.shape[0]}).to_f32());
      tensors.emplace(e.name, Tensor());
      continue;
    }
    tensors.emplace(e.name, m.float_tensor(e.name, e.shape));
    if (m.shards.contains(bias)) tensors.emplace(bias, m.float_tensor(bias, e.shape));
  }
  const std::string p = model::layer_prefix(layer);
  for (const char* head_norm : {"self_attn.q_norm.bias", "self_attn.k_norm.bias"}) {
    auto it = tensors.find(p + head_norm);
    if (it != tensors.end() && !all_zero(it->second)) {
      m.fail(ErrorCode::kUnsupported, "a nonzero per-head q_norm/k_norm bias is not supported", it->first);
    }
  }
  return model::build_layer(m.config, layer, tensors,
                            [&](const model::ModuleId& id, const Tensor& /*weight*/, const Tensor& bias) {
                              const std::string module = model::hf_module_name(id);
                              return m.make_linear(module, weight_shape.at(module), bias,
                                                   id.role == model::ModuleRole::kRouter);
                            });
}

void QuantizedLayerSource::release_layer(std::int64_t layer) {
  const std::string prefix = model::layer_prefix(layer);
  const auto& map = impl_->shards.weight_map();
  for (auto it = map.lower_bound(prefix); it != map.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    impl_->shards.release(it->first);
  }
}

Tensor QuantizedLayerSource::embedding() {
  const model::ModelConfig& c = impl_->config;
  return impl_->float_tensor("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
}

Tensor QuantizedLayerSource::final_norm() {
  return model::to_f32_vector(impl_->float_tensor("model.norm.weight", {impl_->config.hidden_size}));
}

std::unique_ptr<model::Linear> QuantizedLayerSource::lm_head() {
  Impl& m = *impl_;
  const model::ModelConfig& c = m.config;
  const std::string name = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const std::string& type = m.type_of(name);
  if (type != "FLOAT") {
    throw Error(ErrorCode::kUnsupported, "lm_head must be FLOAT, not " + type, m.description_path.string(), name);
  }
  const Tensor weight = m.float_tensor(name, {c.vocab_size, c.hidden_size});
  // compute_logits applies the final norm without a bias, so a nonzero one enters as lm_head's bias W·β:
  // W·(n + β) = W·n + W·β.
  Tensor bias;
  if (m.shards.contains("model.norm.bias")) {
    const Tensor beta = m.float_tensor("model.norm.bias", {c.hidden_size}).to_f32();
    if (!all_zero(beta)) {
      const Tensor w = weight.to_f32();
      bias = Tensor::zeros(DType::kF32, {c.vocab_size});
      for (std::int64_t v = 0; v < c.vocab_size; ++v) {
        double s = 0;
        for (std::int64_t h = 0; h < c.hidden_size; ++h) {
          s += static_cast<double>(w.data<float>()[v * c.hidden_size + h]) * beta.data<float>()[h];
        }
        bias.mutable_data<float>()[v] = static_cast<float>(s);
      }
    }
  }
  return model::make_float_linear(weight, bias, model::FloatPrecision::kF32);
}

std::string QuantizedLayerSource::tensor_type(const std::string& name) const {
  auto it = impl_->types.find(name);
  return it == impl_->types.end() ? std::string() : it->second;
}

const fs::path& QuantizedLayerSource::description_path() const { return impl_->description_path; }

}  // namespace moeslim::formats::msmodelslim
