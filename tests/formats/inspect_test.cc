// `inspect` accepts what the writer produces (in both layouts and both float dtypes) and rejects each of a
// series of single corruptions, naming the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "common/test_paths.h"
#include "core/half.h"
#include "formats/msmodelslim/inspect.h"
#include "io/json_file.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "tiny_quantized_model.h"

namespace moeslim::formats::msmodelslim::testing {
namespace {

namespace fs = std::filesystem;
using moeslim::testing::TempDir;

constexpr const char* kIndex = "quant_model_weight_w8a8_dynamic.safetensors.index.json";

struct Output {
  TempDir root{"export_inspect"};
  fs::path model = root.path() / "model";
  fs::path out = root.path() / "out";
  explicit Output(Layout format = Layout::kAscendV1, DType fd = DType::kBF16,
                  std::uint64_t max_shard_bytes = io::kDefaultMaxShardBytes) {
    make_input_model_dir(model, fd);
    write_tiny_output(model, out, format, fd, 1, max_shard_bytes);
  }

  fs::path shard_of(const std::string& tensor) const {
    return out / io::read_json_file(out / kIndex)["weight_map"][tensor].get<std::string>();
  }

  // Rewrites the shard holding `tensor` with `edit` applied to its (name, tensor) list, in file order.
  void edit_shard(const std::string& tensor, const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
    const fs::path path = shard_of(tensor);
    std::vector<std::pair<std::string, Tensor>> tensors;
    {
      const auto file = io::SafetensorsFile::open(path);
      for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.tensor(info.name).clone());
    }
    edit(tensors);
    io::write_safetensors(path, tensors);
  }

  Tensor& find(std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& name) {
    for (auto& [n, t] : tensors) {
      if (n == name) return t;
    }
    throw std::runtime_error("no tensor " + name);
  }

  void edit_tensor(const std::string& name, const std::function<void(Tensor&)>& edit) {
    edit_shard(name, [&](auto& tensors) { edit(find(tensors, name)); });
  }

  void edit_json(const std::string& file, const std::function<void(nlohmann::ordered_json&)>& edit) {
    nlohmann::ordered_json j = io::read_ordered_json_file(out / file);
    edit(j);
    write_file(out / file, j.dump(4));
  }
};


TEST(Inspect, AcceptsTheWritersOutputInEveryLayout) {
  for (const Layout format : {Layout::kAscendV1, Layout::kMindIE}) {
    for (const DType fd : {DType::kBF16, DType::kF16}) {
      const Output o(format, fd);
      const InspectReport r = inspect_output_dir(o.out);
      EXPECT_TRUE(r.ok()) << violations_text(r);
      EXPECT_EQ(r.layout, format == Layout::kMindIE ? "mindie" : "ascendV1");
      EXPECT_EQ(r.float_dtype, fd);
      EXPECT_EQ(r.model_quant_type, "W8A8");
    }
  }
  const Output sharded(Layout::kAscendV1, DType::kBF16, /*max_shard_bytes=*/300);
  const InspectReport r = inspect_output_dir(sharded.out);
  EXPECT_TRUE(r.ok()) << violations_text(r);
  EXPECT_GT(r.shard_names.size(), 2u);
}

TEST(Inspect, SummaryCountsLinearsTensorsAndBytesPerType) {
  const Output o;
  const InspectReport r = inspect_output_dir(o.out);
  ASSERT_TRUE(r.ok()) << violations_text(r);
  EXPECT_EQ(r.by_type.at("W8A8").modules, 4u);
  EXPECT_EQ(r.by_type.at("W8A8").tensors, 4u * 7);  // 7 W8A8 tensors each; the q/k/v biases are FLOAT
  EXPECT_EQ(r.by_type.at("W8A8_DYNAMIC").modules, 6u);
  EXPECT_EQ(r.by_type.at("W8A8_DYNAMIC").tensors, 18u);
  // Per expert: gate/up 32 code bytes + 2 x [4,1] bf16, down 32 + 2 x [8,1] bf16.
  EXPECT_EQ(r.by_type.at("W8A8_DYNAMIC").bytes, 2u * ((32 + 16) * 2 + (32 + 32)));
  // FLOAT: embed, router, lm_head and 5 norms (each with a bias), plus the q/k/v biases.
  EXPECT_EQ(r.by_type.at("FLOAT").modules, 8u);
  EXPECT_EQ(r.by_type.at("FLOAT").tensors, 3u + 10 + 3);
  std::uint64_t bytes = 0;
  for (const auto& [type, s] : r.by_type) bytes += s.bytes;
  EXPECT_EQ(bytes, r.total_size);
  const std::string table = format_inspect_report(r);
  EXPECT_NE(table.find("W8A8_DYNAMIC            6       18"), std::string::npos) << table;
  EXPECT_NE(table.find("OK: no violations"), std::string::npos) << table;
}

TEST(Inspect, RejectsAFlippedDeqScaleBit) {
  Output o;
  const std::string name = "model.layers.0.self_attn.k_proj.deq_scale";
  o.edit_tensor(name, [](Tensor& t) { t.mutable_data<std::uint32_t>()[2] ^= 1u; });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "row 2")) << violations_text(r);
}

TEST(Inspect, RejectsAWeightCodeOfMinus128AndTheQuantBiasItBreaks) {
  Output o;
  const std::string p = "model.layers.0.self_attn.q_proj.";
  o.edit_tensor(p + "weight", [](Tensor& t) {
    ASSERT_EQ(t.data<std::int8_t>()[0], 127);
    t.mutable_data<std::int8_t>()[0] = -128;
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, p + "weight", "-128")) << violations_text(r);
  EXPECT_TRUE(names(r, p + "quant_bias", "row 0")) << violations_text(r);  // input_offset != 0 folds the codes
}

TEST(Inspect, RejectsAQuantBiasOffByOne) {
  Output o;
  const std::string name = "model.layers.0.self_attn.o_proj.quant_bias";
  o.edit_tensor(name, [](Tensor& t) { t.mutable_data<std::int32_t>()[5] += 1; });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "row 5")) << violations_text(r);
}

TEST(Inspect, RejectsATensorMissingFromTheDescription) {
  Output o;
  const std::string name = "model.layers.0.mlp.experts.1.up_proj.weight_scale";
  o.edit_json("quant_model_description.json", [&](auto& j) { j.erase(name); });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "not in quant_model_description.json")) << violations_text(r);
}

TEST(Inspect, RejectsADescriptionEntryWithoutATensor) {
  Output o;
  o.edit_json("quant_model_description.json", [](auto& j) {
    nlohmann::ordered_json copy;
    for (const auto& [k, v] : j.items()) {
      copy[k] = v;
      if (k == "lm_head.weight") copy["lm_head.bias"] = "FLOAT";
    }
    j = copy;
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, "lm_head.bias", "stored in no shard")) << violations_text(r);
}

TEST(Inspect, RejectsAStrayTensorInAShard) {
  Output o;
  o.edit_shard("lm_head.weight",
               [](auto& tensors) { tensors.emplace_back("model.layers.0.stray", Tensor::zeros(DType::kBF16, {2})); });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, "model.layers.0.stray", "absent from")) << violations_text(r);
  EXPECT_TRUE(names(r, "model.layers.0.stray", "not in quant_model_description.json")) << violations_text(r);
}

TEST(Inspect, RejectsANaNInANorm) {
  Output o;
  const std::string name = "model.layers.0.post_attention_layernorm.weight";
  o.edit_tensor(name, [](Tensor& t) {
    t.mutable_data<std::uint16_t>()[3] = f32_to_bf16(std::numeric_limits<float>::quiet_NaN());
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "non-finite")) << violations_text(r);
}

TEST(Inspect, RejectsAnInt8WeightStoredAsF32) {
  Output o;
  const std::string name = "model.layers.0.mlp.experts.0.down_proj.weight";
  o.edit_tensor(name, [](Tensor& t) { t = t.to_f32(); });
  // The index's total_size still counts the I8 bytes: fix it so only the dtype is wrong.
  const auto file = io::SafetensorsFile::open(o.shard_of(name));
  std::uint64_t total = 0;
  for (const auto& info : file.tensors()) total += info.nbytes();
  o.edit_json(kIndex, [&](auto& j) { j["metadata"]["total_size"] = total; });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "stored as F32")) << violations_text(r);
  EXPECT_EQ(r.violations.size(), 1u) << violations_text(r);
}

TEST(Inspect, RejectsAWrongIndexTotalSize) {
  Output o;
  o.edit_json(kIndex, [](auto& j) { j["metadata"]["total_size"] = j["metadata"]["total_size"].template get<int>() + 2; });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, std::string(kIndex) + ": metadata.total_size")) << violations_text(r);
  EXPECT_EQ(r.violations.size(), 1u) << violations_text(r);
}

TEST(Inspect, RejectsANonZeroWeightOffsetAndAFractionalInputOffset) {
  Output o;
  const std::string p = "model.layers.0.self_attn.v_proj.";
  o.edit_tensor(p + "weight_offset", [](Tensor& t) { t.mutable_data<std::uint16_t>()[1] = f32_to_bf16(1.0f); });
  o.edit_tensor(p + "input_offset", [](Tensor& t) { t.mutable_data<std::uint16_t>()[0] = f32_to_bf16(2.5f); });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, p + "weight_offset", "row 1")) << violations_text(r);
  EXPECT_TRUE(names(r, p + "input_offset", "integer")) << violations_text(r);
}

TEST(Inspect, RejectsMissingLinearTensorsAndNormBiases) {
  Output o;
  o.edit_shard("model.norm.bias", [](auto& tensors) {
    std::erase_if(tensors, [](const auto& t) {
      return t.first == "model.norm.bias" || t.first == "model.layers.0.self_attn.o_proj.input_scale";
    });
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, "model.norm.bias", "missing")) << violations_text(r);
  EXPECT_TRUE(names(r, "model.layers.0.self_attn.o_proj.input_scale", "missing")) << violations_text(r);
}

TEST(Inspect, RejectsConfigWithoutQuantizeOrWithTheInputsLayerCount) {
  Output o;
  o.edit_json("config.json", [](auto& j) {
    j.erase("quantize");
    j["num_hidden_layers"] = 2;
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, "config.json: quantize")) << violations_text(r);
  EXPECT_TRUE(names(r, "config.json: num_hidden_layers")) << violations_text(r);
}

TEST(Inspect, RejectsMisplacedDescriptionHeaderKeys) {
  Output o;
  o.edit_json("quant_model_description.json", [](auto& j) {
    j.erase("group_size");
    j["version"] = "0.9";
  });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, "quant_model_description.json: group_size", "missing")) << violations_text(r);
  EXPECT_TRUE(names(r, "quant_model_description.json: version", "1.0.0")) << violations_text(r);
}

TEST(Inspect, MindIENormCopiesMustMatch) {
  Output o(Layout::kMindIE);
  const std::string name = "model.layers.0.input_layernorm.module.bias";
  o.edit_tensor(name, [](Tensor& t) { t.mutable_data<std::uint16_t>()[0] = f32_to_bf16(7.0f); });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "differs")) << violations_text(r);
}

TEST(Inspect, F16DeqScaleMustHoldSignExtendedBits) {
  Output o(Layout::kAscendV1, DType::kF16);
  const std::string name = "model.layers.0.self_attn.q_proj.deq_scale";
  o.edit_tensor(name, [](Tensor& t) { t.mutable_data<std::int64_t>()[1] |= std::int64_t{1} << 40; });
  const InspectReport r = inspect_output_dir(o.out);
  EXPECT_TRUE(names(r, name, "sign-extended")) << violations_text(r);
}

TEST(InspectCli, PrintsTheTableAndExitsZeroOnAGoodOutput) {
  const Output o;
  const auto r = moeslim::testing::run_moeslim("inspect '" + o.out.string() + "'");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("W8A8_DYNAMIC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("OK: no violations"), std::string::npos) << r.out;
}

TEST(InspectCli, NamesTheTensorAndExitsOneOnAViolation) {
  Output o;
  const std::string name = "model.layers.0.self_attn.q_proj.deq_scale";
  o.edit_tensor(name, [](Tensor& t) { t.mutable_data<float>()[0] *= 2; });
  const auto r = moeslim::testing::run_moeslim("inspect '" + o.out.string() + "'");
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("VIOLATION    " + name + ": "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("1 violation(s)"), std::string::npos) << r.err;
}

TEST(InspectCli, HelpHasAnExample) {
  const auto r = moeslim::testing::run_moeslim("inspect --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Example: moeslim inspect"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moeslim::formats::msmodelslim::testing
