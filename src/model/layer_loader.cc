#include "model/layer_loader.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/threading.h"

namespace moeslim::model {
namespace {

// Position of the first element whose exponent bits are all ones (NaN or ±Inf), or numel when there is none.
// The common, clean case is one branch-free pass per block, which the compiler vectorizes; the exact position
// is looked for only in a block that has a bad value. memcpy loads: mapped tensors need not be aligned.
template <typename Bits>
std::size_t first_non_finite(const std::byte* data, std::size_t numel, Bits exponent) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t start = 0; start < numel; start += kBlock) {
    const std::size_t end = std::min(numel, start + kBlock);
    unsigned bad = 0;
    for (std::size_t i = start; i < end; ++i) {
      Bits b;
      std::memcpy(&b, data + i * sizeof(Bits), sizeof(Bits));
      bad |= static_cast<unsigned>((b & exponent) == exponent);
    }
    if (bad == 0) continue;
    for (std::size_t i = start; i < end; ++i) {
      Bits b;
      std::memcpy(&b, data + i * sizeof(Bits), sizeof(Bits));
      if ((b & exponent) == exponent) return i;
    }
  }
  return numel;
}

// "[3, 17]" for flat element 113 of a [.., 32] tensor.
std::string element_index(const Shape& shape, std::size_t flat) {
  Shape index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    const auto extent = static_cast<std::size_t>(shape[d]);
    index[d] = static_cast<std::int64_t>(flat % extent);
    flat /= extent;
  }
  return shape_to_string(index);
}

}  // namespace

void check_finite(const Tensor& t, const std::string& file, const std::string& name) {
  std::size_t bad = t.numel();
  std::uint32_t mantissa = 0;  // of the bad element: 0 means an infinity, anything else a NaN
  auto scan = [&](auto exponent, std::uint32_t mantissa_mask) {
    using Bits = decltype(exponent);
    // In blocks over the threads, for the embedding and lm_head (0.6 GB each at Qwen3-30B-A3B's shapes, read
    // alone); a layer's tensors are read one per task, where this runs on the task's thread.
    const std::size_t per_task = (std::size_t{16} << 20) / sizeof(Bits);
    const std::size_t tasks = std::max<std::size_t>(1, (t.numel() + per_task - 1) / per_task);
    std::vector<std::size_t> first_bad(tasks, t.numel());
    kernels::run_tasks(static_cast<std::int64_t>(tasks), tasks > 1, [&](std::int64_t task, int) {
      const std::size_t begin = static_cast<std::size_t>(task) * per_task;
      const std::size_t count = std::min(per_task, t.numel() - begin);
      const std::size_t i = first_non_finite<Bits>(t.bytes() + begin * sizeof(Bits), count, exponent);
      if (i < count) first_bad[static_cast<std::size_t>(task)] = begin + i;
    });
    bad = *std::min_element(first_bad.begin(), first_bad.end());
    if (bad == t.numel()) return;
    Bits b;
    std::memcpy(&b, t.bytes() + bad * sizeof(Bits), sizeof(Bits));
    mantissa = static_cast<std::uint32_t>(b) & mantissa_mask;
  };
  switch (t.dtype()) {
    case DType::kBF16: scan(std::uint16_t{0x7f80}, 0x007f); break;
    case DType::kF16: scan(std::uint16_t{0x7c00}, 0x03ff); break;
    case DType::kF32: scan(std::uint32_t{0x7f800000}, 0x007fffff); break;
    default: return;
  }
  if (bad == t.numel()) return;
  // Quantizing would turn the value into garbage scales for its whole channel (or NaN everywhere), so a
  // corrupt checkpoint is refused where it is read rather than producing a silently broken output.
  throw Error(ErrorCode::kFormat,
              std::string(mantissa == 0 ? "an infinity" : "a NaN") + " at element " + element_index(t.shape(), bad) +
                  " of " + std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()) +
                  ": the weights must be finite (a corrupt or overflowed checkpoint)",
              file, name);
}

Tensor read_checked(const io::Checkpoint& checkpoint, const std::string& name, const Shape& shape) {
  if (!checkpoint.contains(name)) {
    throw Error(ErrorCode::kNotFound, "tensor required by config.json is missing from the checkpoint",
                checkpoint.dir().string(), name);
  }
  Tensor t = checkpoint.tensor(name);
  if (t.shape() != shape) {
    throw Error(ErrorCode::kFormat,
                "shape " + shape_to_string(t.shape()) + " does not match " + shape_to_string(shape) +
                    " implied by config.json",
                checkpoint.shard_path_of(name).string(), name);
  }
  if (t.dtype() != DType::kBF16 && t.dtype() != DType::kF16 && t.dtype() != DType::kF32) {
    throw Error(ErrorCode::kUnsupported,
                "weights must be BF16, F16 or F32, not " + std::string(dtype_name(t.dtype())),
                checkpoint.shard_path_of(name).string(), name);
  }
  check_finite(t, checkpoint.shard_path_of(name).string(), name);
  return t;
}

LayerTensors read_layer_tensors(const io::Checkpoint& checkpoint, const ModelConfig& config, std::int64_t layer,
                                bool release_checked) {
  // The finiteness scan reads every byte of the layer (and faults its pages in): one tensor per task, over the
  // threads. A bad tensor fails its task, and run_tasks reports the first bad one in the expected order.
  const std::vector<ExpectedTensor> expected = expected_layer_tensors(config, layer);
  std::vector<Tensor> tensors(expected.size());
  kernels::run_tasks(static_cast<std::int64_t>(expected.size()), true, [&](std::int64_t i, int /*worker*/) {
    const ExpectedTensor& e = expected[static_cast<std::size_t>(i)];
    tensors[static_cast<std::size_t>(i)] = read_checked(checkpoint, e.name, e.shape);
    if (release_checked) checkpoint.release(e.name);
  });
  LayerTensors out;
  for (std::size_t i = 0; i < expected.size(); ++i) out.emplace(expected[i].name, std::move(tensors[i]));
  return out;
}

Tensor to_f32_vector(const Tensor& t) { return t.dtype() == DType::kF32 && !t.is_view() ? t : t.to_f32(); }

namespace {

const Tensor& get(const LayerTensors& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(ErrorCode::kInternal, "layer tensor not loaded", "", name);
  return it->second;
}

Tensor optional(const LayerTensors& tensors, const std::string& name) {
  auto it = tensors.find(name);
  return it == tensors.end() ? Tensor() : it->second;
}

std::unique_ptr<Linear> linear(const LayerTensors& t, const ModuleId& module, const LinearFactory& make) {
  return make(module, get(t, hf_weight_name(module)), optional(t, hf_bias_name(module)));
}

RmsNorm norm(const LayerTensors& t, const ModuleId& module) {
  const Tensor bias = optional(t, hf_bias_name(module));
  return RmsNorm{to_f32_vector(get(t, hf_weight_name(module))), bias.empty() ? Tensor() : to_f32_vector(bias)};
}

SwiGluMlp build_swiglu(const LayerTensors& t, std::int64_t layer, std::int64_t expert, const LinearFactory& make) {
  SwiGluMlp m;
  m.gate_proj = linear(t, {layer, ModuleRole::kGateProj, expert}, make);
  m.up_proj = linear(t, {layer, ModuleRole::kUpProj, expert}, make);
  m.down_proj = linear(t, {layer, ModuleRole::kDownProj, expert}, make);
  return m;
}

}  // namespace

DecoderLayer build_layer_without_experts(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                                         const LinearFactory& make) {
  DecoderLayer d;
  d.index = layer;
  d.attn.input_norm = norm(t, {layer, ModuleRole::kInputNorm});
  d.attn.q_proj = linear(t, {layer, ModuleRole::kQProj}, make);
  d.attn.k_proj = linear(t, {layer, ModuleRole::kKProj}, make);
  d.attn.v_proj = linear(t, {layer, ModuleRole::kVProj}, make);
  d.attn.o_proj = linear(t, {layer, ModuleRole::kOProj}, make);
  d.attn.q_norm = norm(t, {layer, ModuleRole::kQNorm}).weight;
  d.attn.k_norm = norm(t, {layer, ModuleRole::kKNorm}).weight;
  d.mlp.post_norm = norm(t, {layer, ModuleRole::kPostAttentionNorm});
  d.mlp.is_moe = config.is_moe_layer(layer);
  if (d.mlp.is_moe) {
    d.mlp.router = linear(t, {layer, ModuleRole::kRouter}, make);
    d.mlp.experts.resize(static_cast<std::size_t>(config.num_experts));
  } else {
    d.mlp.dense = build_swiglu(t, layer, -1, make);
  }
  return d;
}

SwiGluMlp build_expert(std::int64_t layer, std::int64_t expert, const LayerTensors& t, const LinearFactory& make) {
  return build_swiglu(t, layer, expert, make);
}

DecoderLayer build_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                         const LinearFactory& make) {
  DecoderLayer d = build_layer_without_experts(config, layer, t, make);
  for (std::size_t e = 0; e < d.mlp.experts.size(); ++e) {
    d.mlp.experts[e] = build_swiglu(t, layer, static_cast<std::int64_t>(e), make);
  }
  return d;
}

LinearFactory float_linear_factory(FloatPrecision precision) {
  return [precision](const ModuleId& module, const Tensor& weight, const Tensor& bias) {
    // The router stays float32 in every mode: routing decisions are sensitive and the GEMM is tiny.
    return make_float_linear(weight, bias, module.role == ModuleRole::kRouter ? FloatPrecision::kF32 : precision);
  };
}

DecoderLayer build_float_layer(const ModelConfig& config, std::int64_t layer, const LayerTensors& t,
                               FloatPrecision precision) {
  return build_layer(config, layer, t, float_linear_factory(precision));
}

}  // namespace moeslim::model
