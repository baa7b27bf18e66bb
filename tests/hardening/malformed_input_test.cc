// A corpus of malformed inputs, every one generated here in a fresh temporary directory (no checked-in
// binaries): safetensors shards, checkpoint indexes, config.json, weights holding NaN/Inf, tokenizer.json,
// calibration datasets, recipe files and `moeslim quant` output paths. Each must be refused with the right
// ErrorCode and a message that names the file and the field (tensor, JSON key, key path) at fault; never a
// crash, a hang (ctest's TIMEOUT) or a silently accepted input. A few inputs that look wrong but are valid are
// asserted to load, with the reason next to them.
//
// One table entry per case: how to write the input, how moeslim reads it, and what the error must say.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "common/test_paths.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/io_test_util.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/layer_loader.h"
#include "model/synthetic_checkpoint.h"
#include "pipeline/calibration_data.h"
#include "recipe/recipe.h"
#include "text/tokenizer.h"
#include "text/tokenizer_fixture.h"

namespace moeslim::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using io::testing::write_bytes;
using io::testing::write_raw_safetensors;

using Writer = std::function<void(const fs::path& dir)>;
using Loader = std::function<void(const fs::path& dir)>;

struct MalformedCase {
  std::string name;         // the gtest name
  Writer write;             // creates the broken input in an empty directory
  Loader load;              // reads it the way moeslim does
  std::optional<ErrorCode> code;  // nullopt: the input is valid after all and must load (see the entry)
  std::string file;         // expected Error::file(), relative to the directory ("" = the directory itself)
  std::string field;        // expected Error::field() (tensor, JSON key, key path; may be empty)
  std::vector<std::string> says;  // substrings of what()
};

std::ostream& operator<<(std::ostream& os, const MalformedCase& c) { return os << c.name; }

void write_text(const fs::path& path, const std::string& text) { write_bytes(path, text); }

// ---- safetensors shards: dir/x.safetensors, opened with the strict reader ----

constexpr const char* kShard = "x.safetensors";

Writer raw_shard(std::string header, std::size_t data_bytes, std::int64_t declared_length = -1) {
  return [=](const fs::path& dir) { write_raw_safetensors(dir / kShard, header, data_bytes, declared_length); };
}

// A valid shard (a, b: F32 [2] each) with its last `cut_bytes` bytes gone, as an interrupted copy leaves it.
Writer truncated_shard(std::uint64_t cut_bytes) {
  return [=](const fs::path& dir) {
    Tensor t = Tensor::zeros(DType::kF32, {2});
    io::write_safetensors(dir / kShard, {{"a", t}, {"b", t}});
    fs::resize_file(dir / kShard, fs::file_size(dir / kShard) - cut_bytes);
  };
}

void open_shard(const fs::path& dir) { io::SafetensorsFile::open(dir / kShard); }

// ---- checkpoint indexes: a.safetensors holds x, y; b.safetensors holds z ----

constexpr const char* kIndex = "model.safetensors.index.json";

Writer sharded_checkpoint(std::string weight_map_json) {
  return [=](const fs::path& dir) {
    Tensor t = Tensor::zeros(DType::kF32, {2});
    io::write_safetensors(dir / "a.safetensors", {{"x", t}, {"y", t}});
    io::write_safetensors(dir / "b.safetensors", {{"z", t}});
    write_text(dir / kIndex, weight_map_json);
  };
}

// Opens the checkpoint and every shard's header (each is checked against the index when first opened).
void open_checkpoint(const fs::path& dir) { io::Checkpoint::open(dir).shard_stats(); }

// ---- config.json ----

json minimal_config() {
  return json{{"model_type", "qwen3_moe"}, {"vocab_size", 100}, {"hidden_size", 64}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"num_experts", 4}, {"num_experts_per_tok", 2},
              {"moe_intermediate_size", 16}};
}

// The minimal config with `patch` merged in (RFC 7386: a null removes the key).
Writer config_with(const json& patch) {
  return [=](const fs::path& dir) {
    json j = minimal_config();
    j.merge_patch(patch);
    write_text(dir / "config.json", j.dump(2));
  };
}

void load_config(const fs::path& dir) { model::ModelConfig::load(dir); }

// ---- small bf16 checkpoints (the tiny preset narrowed further) for layer loading and the CLI ----

const json kSmallModel = {{"hidden_size", 32},  {"head_dim", 8},         {"num_attention_heads", 4},
                          {"num_key_value_heads", 2}, {"num_experts", 2}, {"num_experts_per_tok", 1},
                          {"moe_intermediate_size", 16}, {"intermediate_size", 32}};
constexpr const char* kSmallShard = "model-00001-of-00001.safetensors";

// One layer; with `tokenizer`, the bundled tiny tokenizer too (its ids need the preset's 4096-token vocab).
void write_small_model(const fs::path& dir, bool tokenizer = false) {
  model::SynthOptions o;
  o.preset = "tiny";
  o.layers = 1;
  o.out_dir = dir;
  o.config_overrides = nlohmann::ordered_json::parse(kSmallModel.dump());
  if (tokenizer) o.tokenizer = bundled_model_dir();
  model::write_synthetic_checkpoint(o);
}

// Rewrites config.json with `patch` merged in, leaving the weights as written.
void patch_config(const fs::path& dir, const json& patch) {
  json j = read_json_file(dir / "config.json");
  j.merge_patch(patch);
  write_text(dir / "config.json", j.dump(2));
}

// Overwrites element `element` of a bf16 tensor in its shard with `bits` (a NaN or an infinity).
void poke_bf16(const fs::path& dir, const std::string& tensor, std::size_t element, std::uint16_t bits) {
  fs::path shard;
  std::uint64_t offset = 0;
  {
    const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
    shard = checkpoint.shard_path_of(tensor);
    const io::SafetensorsFile f = io::SafetensorsFile::open(shard);
    ASSERT_EQ(f.info(tensor).dtype, DType::kBF16);
    offset = f.data_offset() + f.info(tensor).begin + element * 2;
  }
  std::fstream file(shard, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(offset));
  const char bytes[2] = {static_cast<char>(bits & 0xff), static_cast<char>(bits >> 8)};
  file.write(bytes, 2);
  ASSERT_TRUE(file.good()) << shard;
}

Writer small_model_with(std::function<void(const fs::path&)> damage) {
  return [=](const fs::path& dir) {
    write_small_model(dir);
    damage(dir);
  };
}

// What the layer-streaming job does for each layer: config, checkpoint, then the layer's tensors.
void load_layer0(const fs::path& dir) {
  const model::ModelConfig config = model::ModelConfig::load(dir);
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  model::read_layer_tensors(checkpoint, config, 0);
}

// ---- tokenizer.json: the bundled tiny model's, altered ----

Writer tokenizer_with(std::function<void(json&)> alter) {
  return [=](const fs::path& dir) {
    json j = read_json_file(bundled_model_dir() / "tokenizer.json");
    alter(j);
    write_text(dir / "tokenizer.json", j.dump());
  };
}

void load_tokenizer(const fs::path& dir) { text::Tokenizer::from_model_dir_or_file(dir); }

// ---- calibration datasets: dir/calib.json, through the pipeline's loader ----

Writer dataset(std::string content) {
  return [=](const fs::path& dir) { write_text(dir / "calib.json", content); };
}

void load_dataset(const fs::path& dir) {
  pipeline::load_calibration_set(dir / "calib.json", tiny_tokenizer(), 4, false, 4096);
}

// ---- recipes ----

Writer recipe(std::string yaml) {
  return [=](const fs::path& dir) { write_text(dir / "recipe.yaml", yaml); };
}

void load_recipe_file(const fs::path& dir) { recipe::load_recipe(dir / "recipe.yaml"); }

const std::string kQuantV0 = "  - quantize:\n      - {include: ['*'], exclude: ['*.mlp.gate'], scheme: w8a8_dynamic}\n";

void nothing(const fs::path&) {}

// clang-format off
const MalformedCase kCases[] = {
    // ---- safetensors shard ----
    {"ShardTruncatedData", truncated_shard(5), open_shard, ErrorCode::kFormat, kShard, "b",
     {"[8, 16] run past the end of the data area (11 bytes)"}},
    {"ShardTruncatedInsideHeader", truncated_shard(30), open_shard, ErrorCode::kFormat, kShard, "",
     {"header length", "runs past the end of the file"}},
    {"ShardHeaderLengthBeyondFileSize", raw_shard("{}", 0, 1000), open_shard, ErrorCode::kFormat, kShard, "",
     {"header length 1000 runs past the end of the file (10 bytes)"}},
    {"ShardHeaderLengthHuge", raw_shard("{}", 0, std::int64_t{1} << 62), open_shard, ErrorCode::kFormat, kShard, "",
     {"exceeds the limit"}},
    {"ShardEmptyFile", [](const fs::path& d) { write_bytes(d / kShard, ""); }, open_shard, ErrorCode::kFormat, kShard,
     "", {"file is 0 bytes"}},
    {"ShardHeaderInvalidJson", raw_shard(R"({"a": {"dtype": "F32", )", 0), open_shard, ErrorCode::kFormat, kShard, "",
     {"header is not valid JSON at line 1"}},
    // A number beyond double range is a parse failure too (nlohmann reports it as out_of_range, not parse_error).
    {"ShardHeaderNumberTooLarge", raw_shard(R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})", 4),
     open_shard, ErrorCode::kFormat, kShard, "", {"header is not valid JSON", "1e400"}},
    {"ShardHeaderInvalidUtf8", raw_shard("{\"a\xff\": {}}", 0), open_shard, ErrorCode::kFormat, kShard, "",
     {"not valid UTF-8"}},
    {"ShardHeaderNotAnObject", raw_shard("[1, 2]", 0), open_shard, ErrorCode::kFormat, kShard, "",
     {"header JSON is not an object but array"}},
    {"ShardDuplicateKey",
     raw_shard(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
     open_shard, ErrorCode::kFormat, kShard, "a", {"duplicate key"}},
    {"ShardUnknownDtype", raw_shard(R"({"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"unknown dtype 'F17'"}},
    {"ShardUnsupportedDtype", raw_shard(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8), open_shard,
     ErrorCode::kUnsupported, kShard, "a", {"dtype F64 is not supported"}},
    {"ShardMissingDtype", raw_shard(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"no 'dtype'"}},
    {"ShardOverlappingOffsets",
     raw_shard(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
     open_shard, ErrorCode::kFormat, kShard, "b", {"overlap those of 'a' [0, 8]"}},
    // Offsets listed out of order but tiling the data area are valid: the format orders entries by name, not
    // by offset, and the reference implementation sorts by offset before checking coverage, as moeslim does.
    {"ShardOutOfOrderOffsetsAccepted",
     raw_shard(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
     [](const fs::path& d) {
       const io::SafetensorsFile f = io::SafetensorsFile::open(d / kShard);
       ASSERT_EQ(f.tensors().size(), 2u);
       EXPECT_EQ(f.tensors()[0].name, "a");  // sorted by data offset
     },
     std::nullopt, "", "", {}},
    {"ShardOffsetsPastEnd", raw_shard(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"run past the end of the data area (4 bytes)"}},
    {"ShardOffsetsLeaveGap",
     raw_shard(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
     open_shard, ErrorCode::kFormat, kShard, "b", {"gap in the data area: bytes [4, 8)"}},
    {"ShardTrailingBytes", raw_shard(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12), open_shard,
     ErrorCode::kFormat, kShard, "a", {"trailing bytes"}},
    {"ShardShapeTimesDtypeNotByteLength", raw_shard(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8),
     open_shard, ErrorCode::kFormat, kShard, "a", {"span 8 bytes but shape [3] x BF16 needs 6"}},
    {"ShardNegativeShape", raw_shard(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"'shape' must hold non-negative integers, found -1"}},
    {"ShardNonIntegerShape", raw_shard(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"'shape' must hold non-negative integers, found 1.5"}},
    {"ShardStringShape", raw_shard(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"'shape' is not an array"}},
    {"ShardShapeOverflows",
     raw_shard(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"overflows 64 bits"}},
    {"ShardBeginAfterEnd", raw_shard(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), open_shard,
     ErrorCode::kFormat, kShard, "a", {"data_offsets [8, 4] have begin > end"}},
    {"ShardOffsetsNotAPair", raw_shard(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "a", {"'data_offsets' must be [begin, end]"}},
    {"ShardMetadataNotStrings",
     raw_shard(R"({"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4), open_shard,
     ErrorCode::kFormat, kShard, "__metadata__", {"value of 'format' is not a string"}},

    // ---- checkpoint index ----
    {"IndexTensorMissingFromShard",
     sharded_checkpoint(R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors","w":"a.safetensors","z":"b.safetensors"}})"),
     open_checkpoint, ErrorCode::kFormat, "a.safetensors", "w",
     {"model.safetensors.index.json maps this tensor to a.safetensors, whose header lacks it"}},
    {"ShardTensorMissingFromIndex", sharded_checkpoint(R"({"weight_map":{"x":"a.safetensors","z":"b.safetensors"}})"),
     open_checkpoint, ErrorCode::kFormat, "a.safetensors", "y",
     {"in the shard's header but not in model.safetensors.index.json"}},
    {"IndexShardMissingOnDisk",
     sharded_checkpoint(R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"c.safetensors"}})"),
     open_checkpoint, ErrorCode::kNotFound, "c.safetensors", "z", {"shard listed in", "is missing"}},
    {"IndexNotJson", sharded_checkpoint(R"({"weight_map": {"x": "a.safetensors",)"), open_checkpoint,
     ErrorCode::kFormat, kIndex, "", {"invalid JSON: line 1"}},
    {"IndexWeightMapWrongType", sharded_checkpoint(R"({"weight_map": ["a.safetensors", "b.safetensors"]})"),
     open_checkpoint, ErrorCode::kFormat, kIndex, "weight_map", {"'weight_map' is not an object but array"}},
    {"IndexWithoutWeightMap", sharded_checkpoint(R"({"metadata": {"total_size": 24}})"), open_checkpoint,
     ErrorCode::kFormat, kIndex, "weight_map", {"index has no 'weight_map'"}},
    {"IndexShardNameNotAString",
     sharded_checkpoint(R"({"weight_map":{"x":"a.safetensors","y":1,"z":"b.safetensors"}})"), open_checkpoint,
     ErrorCode::kFormat, kIndex, "y", {"not a shard file name: 1"}},
    {"IndexShardOutsideModelDir",
     sharded_checkpoint(R"({"weight_map":{"x":"../a.safetensors","y":"a.safetensors","z":"b.safetensors"}})"),
     open_checkpoint, ErrorCode::kFormat, kIndex, "x", {"not a file in the model directory"}},

    // ---- config.json ----
    {"ConfigMissing", nothing, load_config, ErrorCode::kNotFound, "config.json", "", {"no config.json"}},
    {"ConfigNotJson", [](const fs::path& d) { write_text(d / "config.json", R"({"hidden_size": 64,)"); }, load_config,
     ErrorCode::kFormat, "config.json", "", {"invalid JSON: line 1"}},
    {"ConfigNumberTooLarge", [](const fs::path& d) { write_text(d / "config.json", R"({"rms_norm_eps": 1e400})"); },
     load_config, ErrorCode::kFormat, "config.json", "", {"invalid JSON", "1e400"}},
    {"ConfigNotAnObject", [](const fs::path& d) { write_text(d / "config.json", "[64, 4]"); }, load_config,
     ErrorCode::kFormat, "config.json", "", {"config must be a JSON object"}},
    {"ConfigMissingRequiredKey", config_with({{"hidden_size", nullptr}}), load_config, ErrorCode::kFormat,
     "config.json", "hidden_size", {"required key is missing"}},
    {"ConfigStringWhereNumber", config_with({{"num_attention_heads", "4"}}), load_config, ErrorCode::kFormat,
     "config.json", "num_attention_heads", {"must be an integer, got string \"4\""}},
    {"ConfigFractionWhereInteger", config_with({{"num_experts", 4.5}}), load_config, ErrorCode::kFormat,
     "config.json", "num_experts", {"must be an integer, got number 4.5"}},
    {"ConfigWrongTypeBoolean", config_with({{"tie_word_embeddings", "no"}}), load_config, ErrorCode::kFormat,
     "config.json", "tie_word_embeddings", {"must be true or false"}},
    // Without head_dim it is hidden_size / num_attention_heads, which must then be exact.
    {"ConfigHeadsNotDividingHidden", config_with({{"hidden_size", 66}}), load_config, ErrorCode::kFormat,
     "config.json", "num_attention_heads", {"does not divide hidden_size 66"}},
    // Qwen3 gives head_dim explicitly and q_proj is [heads * head_dim, hidden]: hidden_size need not divide.
    {"ConfigExplicitHeadDimAccepted", config_with({{"hidden_size", 66}, {"head_dim", 16}}),
     [](const fs::path& d) { EXPECT_EQ(model::ModelConfig::load(d).q_width(), 64); }, std::nullopt, "", "", {}},
    {"ConfigOddHeadDim", config_with({{"head_dim", 7}}), load_config, ErrorCode::kFormat, "config.json", "head_dim",
     {"must be even for rotary embeddings"}},
    {"ConfigKvHeadsNotDividingHeads", config_with({{"num_key_value_heads", 3}}), load_config, ErrorCode::kFormat,
     "config.json", "num_key_value_heads", {"must divide num_attention_heads 4, got 3"}},
    {"ConfigTopKExceedsExperts", config_with({{"num_experts_per_tok", 5}}), load_config, ErrorCode::kFormat,
     "config.json", "num_experts_per_tok", {"top-k 5 exceeds num_experts 4"}},
    {"ConfigZeroLayers", config_with({{"num_hidden_layers", 0}}), load_config, ErrorCode::kFormat, "config.json",
     "num_hidden_layers", {"must be positive, got 0"}},
    {"ConfigNegativeHidden", config_with({{"hidden_size", -64}}), load_config, ErrorCode::kFormat, "config.json",
     "hidden_size", {"must be positive, got -64"}},
    {"ConfigNegativeMoeIntermediate", config_with({{"moe_intermediate_size", -16}}), load_config, ErrorCode::kFormat,
     "config.json", "moe_intermediate_size", {"must be positive, got -16"}},
    {"ConfigNegativeExperts", config_with({{"num_experts", -4}}), load_config, ErrorCode::kFormat, "config.json",
     "num_experts", {"must not be negative"}},
    {"ConfigZeroContext", config_with({{"max_position_embeddings", 0}}), load_config, ErrorCode::kFormat,
     "config.json", "max_position_embeddings", {"must be positive, got 0"}},
    {"ConfigUnsupportedModelType", config_with({{"model_type", "llama"}}), load_config, ErrorCode::kUnsupported,
     "config.json", "model_type", {"not 'llama'"}},

    // ---- config.json against the weights, found when the layer is loaded ----
    {"LayerShapeDisagreesWithConfig",
     small_model_with([](const fs::path& d) { patch_config(d, {{"moe_intermediate_size", 24}}); }), load_layer0,
     ErrorCode::kFormat, kSmallShard, "model.layers.0.mlp.experts.0.gate_proj.weight",
     {"shape [16, 32] does not match [24, 32] implied by config.json"}},
    {"LayerTensorMissingForConfig",
     small_model_with([](const fs::path& d) { patch_config(d, {{"mlp_only_layers", json::array({0})}}); }), load_layer0,
     ErrorCode::kNotFound, "", "model.layers.0.mlp.gate_proj.weight", {"missing from the checkpoint"}},

    // ---- NaN / Inf in a weight ----
    {"WeightNaN",
     small_model_with([](const fs::path& d) { poke_bf16(d, "model.layers.0.self_attn.k_proj.weight", 37, 0x7fc1); }),
     load_layer0, ErrorCode::kFormat, kSmallShard, "model.layers.0.self_attn.k_proj.weight",
     {"a NaN at element [1, 5] of BF16 [16, 32]"}},
    {"WeightPositiveInf",
     small_model_with([](const fs::path& d) { poke_bf16(d, "model.layers.0.mlp.experts.1.down_proj.weight", 50, 0x7f80); }),
     load_layer0, ErrorCode::kFormat, kSmallShard, "model.layers.0.mlp.experts.1.down_proj.weight",
     {"an infinity at element [3, 2] of BF16 [32, 16]"}},
    {"NormWeightNegativeInf",
     small_model_with([](const fs::path& d) { poke_bf16(d, "model.layers.0.post_attention_layernorm.weight", 31, 0xff80); }),
     load_layer0, ErrorCode::kFormat, kSmallShard, "model.layers.0.post_attention_layernorm.weight",
     {"an infinity at element [31]"}},

    // ---- tokenizer.json ----
    {"TokenizerMissing", nothing, load_tokenizer, ErrorCode::kNotFound, "tokenizer.json", "", {"no such file"}},
    {"TokenizerMalformedJson",
     [](const fs::path& d) { write_text(d / "tokenizer.json", read_whole_file(bundled_model_dir() / "tokenizer.json").substr(0, 500)); },
     load_tokenizer, ErrorCode::kFormat, "tokenizer.json", "", {"not valid JSON"}},
    {"TokenizerNotAnObject", [](const fs::path& d) { write_text(d / "tokenizer.json", "[]"); }, load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "", {"top level must be a JSON object"}},
    {"TokenizerMissingMerges", tokenizer_with([](json& j) { j["model"].erase("merges"); }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.merges", {"missing"}},
    {"TokenizerMergesWrongType", tokenizer_with([](json& j) { j["model"]["merges"] = json::object(); }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.merges", {"must be an array"}},
    {"TokenizerMergeOfUnknownToken",
     tokenizer_with([](json& j) { j["model"]["merges"][0] = json::array({"no-such-token", "x"}); }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.merges[0]", {"'no-such-token' is not in model.vocab"}},
    {"TokenizerUnknownModelType", tokenizer_with([](json& j) { j["model"]["type"] = "Unigram"; }), load_tokenizer,
     ErrorCode::kUnsupported, "tokenizer.json", "model.type", {"model type 'Unigram' is not supported"}},
    {"TokenizerMissingVocab", tokenizer_with([](json& j) { j["model"].erase("vocab"); }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.vocab", {"missing"}},
    {"TokenizerVocabIdNotInteger", tokenizer_with([](json& j) { j["model"]["vocab"]["!"] = "zero"; }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.vocab['!']", {"must be an integer token id"}},
    // Found by fuzz_tokenizer_json: one huge id made the id tables gigabytes.
    {"TokenizerVocabIdHuge", tokenizer_with([](json& j) { j["model"]["vocab"]["!"] = 109854455; }), load_tokenizer,
     ErrorCode::kFormat, "tokenizer.json", "model.vocab['!']", {"token id 109854455 is out of range"}},
    {"TokenizerAddedTokenWithoutContent", tokenizer_with([](json& j) { j["added_tokens"][0].erase("content"); }),
     load_tokenizer, ErrorCode::kFormat, "tokenizer.json", "added_tokens[0].content", {"missing"}},

    // ---- calibration dataset ----
    {"DatasetMissing", nothing, load_dataset, ErrorCode::kNotFound, "calib.json", "", {"no such file"}},
    {"DatasetEmptyFile", dataset(""), load_dataset, ErrorCode::kFormat, "calib.json", "", {"file is empty"}},
    {"DatasetNotJson", dataset(R"(["one prompt", "another)"), load_dataset, ErrorCode::kFormat, "calib.json", "",
     {"not valid JSON"}},
    {"DatasetNumberInPromptList", dataset(R"(["one prompt", 42])"), load_dataset, ErrorCode::kFormat, "calib.json",
     "[1]", {"element is a JSON number, not a string"}},
    {"DatasetObjectInPromptList", dataset(R"([{"prompt": "one prompt"}])"), load_dataset, ErrorCode::kFormat,
     "calib.json", "[0]", {"element is a JSON object, not a string"}},
    {"DatasetJsonlWithoutTextKey", dataset("{\"text\": \"one\"}\n{\"prompt\": \"two\"}\n"), load_dataset,
     ErrorCode::kFormat, "calib.json", "line 2.text", {"missing"}},
    {"DatasetJsonlTextNotString", dataset("{\"text\": [\"one\"]}\n"), load_dataset, ErrorCode::kFormat, "calib.json",
     "line 1.text", {"is a JSON array, not a string"}},
    {"DatasetNoPrompts", dataset("[]"), load_dataset, ErrorCode::kFormat, "calib.json", "",
     {"dataset contains no texts"}},
    {"DatasetOnlyEmptyPrompts", dataset(R"(["", ""])"), load_dataset, ErrorCode::kInvalidArgument, "calib.json", "",
     {"no usable prompt"}},

    // ---- recipe YAML ----
    {"RecipeUnknownKey", recipe("apiversion: modelslim_v0\nproces:\n" + kQuantV0), load_recipe_file,
     ErrorCode::kInvalidArgument, "recipe.yaml", "proces", {"allowed keys: apiversion"}},
    {"RecipeBadGlob",
     recipe("apiversion: modelslim_v0\nprocess:\n  - quantize:\n      - {include: ['model.layers.[0-9.*'], scheme: w8a8_dynamic}\n"),
     load_recipe_file, ErrorCode::kInvalidArgument, "recipe.yaml", "process[0].quantize[0].include[0]",
     {"unterminated '['"}},
    {"RecipeWrongType", recipe("apiversion: modelslim_v0\ndata: {batch_size: four}\nprocess:\n" + kQuantV0),
     load_recipe_file, ErrorCode::kInvalidArgument, "recipe.yaml", "data.batch_size",
     {"expected an integer in 1..16, got 'four'"}},
};
// clang-format on

class MalformedInput : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedInput, IsRefusedNamingFileAndField) {
  const MalformedCase& c = GetParam();
  TempDir dir("malformed_" + c.name);
  c.write(dir.path());
  ASSERT_FALSE(HasFatalFailure());
  if (!c.code) {
    EXPECT_NO_THROW(c.load(dir.path()));
    return;
  }
  try {
    c.load(dir.path());
    ADD_FAILURE() << "the malformed input was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string file = c.file.empty() ? dir.path().string() : (dir.path() / c.file).string();
    EXPECT_EQ(e.code(), *c.code) << "got " << error_code_name(e.code()) << ": " << what;
    EXPECT_EQ(e.file(), file) << what;
    EXPECT_EQ(e.field(), c.field) << what;
    EXPECT_NE(what.find(file), std::string::npos) << "the file is not named: " << what;
    if (!c.field.empty()) {
      EXPECT_NE(what.find("'" + c.field + "'"), std::string::npos) << what;
    }
    for (const std::string& s : c.says) EXPECT_NE(what.find(s), std::string::npos) << "'" << s << "' not in: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a moeslim::Error: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedInput, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

// A prompt longer than the model's context (max_position_embeddings) is cut to it, with one warning saying how
// many prompts were cut and to what length.
TEST(MalformedInputCorpus, OverlongPromptsAreTruncatedWithAWarning) {
  TempDir dir("malformed_overlong");
  const fs::path file = dir.path() / "calib.json";
  const std::string long_text(400, 'x');
  write_text(file, json::array({"short", long_text, "hello " + long_text}).dump());
  const LogLevel level = log_level();
  set_log_level(LogLevel::kWarn);
  ::testing::internal::CaptureStderr();
  const pipeline::CalibrationSet set = pipeline::load_calibration_set(file, tiny_tokenizer(), 4, false, 8);
  const std::string log = ::testing::internal::GetCapturedStderr();
  set_log_level(level);
  EXPECT_EQ(set.prompts, 3);
  EXPECT_EQ(set.truncated, 2);
  ASSERT_EQ(set.tokens.layout.sequences.size(), 3u);
  EXPECT_EQ(set.tokens.layout.sequences[0].length, static_cast<std::int64_t>(tiny_tokenizer().encode("short").size()));
  EXPECT_EQ(set.tokens.layout.sequences[1].length, 8);
  EXPECT_EQ(set.tokens.layout.sequences[2].length, 8);
  EXPECT_NE(log.find(file.string()), std::string::npos) << log;
  EXPECT_NE(log.find("2 of 3 prompts"), std::string::npos) << log;
  EXPECT_NE(log.find("max_position_embeddings 8"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated to their first 8 tokens"), std::string::npos) << log;
}

// ---- `moeslim quant` as a user runs it ----

struct CliRun {
  std::string args;                  // after "moeslim quant"
  std::vector<std::string> mentions; // what the error message must name (paths)
  fs::path must_not_exist;           // an output that must not have been left behind (empty: none)
};

struct CliCase {
  std::string name;
  std::function<CliRun(const fs::path& dir)> setup;
  int status;                     // expected exit status (2 for invalid arguments, 1 for other errors)
  std::vector<std::string> says;  // substrings of stderr
};

std::ostream& operator<<(std::ostream& os, const CliCase& c) { return os << c.name; }

// A one-layer small model with the tiny tokenizer in dir/model and a two-prompt calibration file, so that a
// run gets to its output directory in well under a second.
std::string small_quant_args(const fs::path& dir, const fs::path& save) {
  write_small_model(dir / "model", /*tokenizer=*/true);
  write_text(dir / "calib.json", R"(["The quick brown fox.", "Jumps over the lazy dog."])");
  const std::string calib = shell_quoted(dir / "calib.json");
  return "quant --model_path " + shell_quoted(dir / "model") + " --save_path " + shell_quoted(save) +
         " --calib_dataset " + calib + " --anti_dataset " + calib + " --layer_count 1";
}

// clang-format off
const CliCase kCliCases[] = {
    {"SavePathIsModelPath",
     [](const fs::path& d) { return CliRun{small_quant_args(d, d / "model"), {(d / "model").string()}, {}}; },
     2, {"is the same directory as --model_path"}},
    {"SavePathInsideModelPath",
     [](const fs::path& d) {
       return CliRun{small_quant_args(d, d / "model" / "out"), {(d / "model" / "out").string()}, d / "model" / "out"};
     },
     2, {"lies inside --model_path"}},
    // A path below a regular file cannot be created, even by root.
    {"SavePathUnderARegularFile",
     [](const fs::path& d) {
       write_text(d / "file", "not a directory");
       return CliRun{small_quant_args(d, d / "file" / "out"), {(d / "file" / "out").string()}, {}};
     },
     1, {"cannot create the directory that is to hold --save_path", "Not a directory"}},
    {"ModelWithoutConfig",
     [](const fs::path& d) {
       CliRun run{small_quant_args(d, d / "out"), {(d / "model" / "config.json").string()}, d / "out"};
       fs::remove(d / "model" / "config.json");
       return run;
     },
     1, {"error (not-found)", "no config.json"}},
    // The real job stops at the corrupt weight, names it, and leaves no output behind.
    {"WeightNaNInTheQuantizedLayer",
     [](const fs::path& d) {
       CliRun run{small_quant_args(d, d / "out"), {(d / "model" / kSmallShard).string()}, d / "out"};
       poke_bf16(d / "model", "model.layers.0.mlp.experts.0.up_proj.weight", 3, 0xffc0);
       return run;
     },
     1, {"'model.layers.0.mlp.experts.0.up_proj.weight'", "a NaN at element [0, 3]"}},
    // The layer's tensors are checked as tasks over every CPU: with two corrupt, the first in the layer's order
    // is the one named, whichever thread found which.
    {"WeightNaNInTwoTensorsNamesTheFirst",
     [](const fs::path& d) {
       CliRun run{small_quant_args(d, d / "out"), {(d / "model" / kSmallShard).string()}, d / "out"};
       poke_bf16(d / "model", "model.layers.0.mlp.experts.1.down_proj.weight", 0, 0x7f80);
       poke_bf16(d / "model", "model.layers.0.mlp.experts.0.up_proj.weight", 3, 0xffc0);
       return run;
     },
     1, {"'model.layers.0.mlp.experts.0.up_proj.weight'", "a NaN at element [0, 3]"}},
};
// clang-format on

void expect_clean_failure(const CommandResult& r, int status, const std::vector<std::string>& says,
                          const std::vector<std::string>& mentions) {
  EXPECT_EQ(r.status, status) << r.err;
  for (const std::string& s : says) EXPECT_NE(r.err.find(s), std::string::npos) << "'" << s << "' not in: " << r.err;
  for (const std::string& p : mentions) EXPECT_NE(r.err.find(p), std::string::npos) << p << " not named: " << r.err;
  EXPECT_NE(r.err.find("moeslim: error ("), std::string::npos) << r.err;
  for (const char* crash : {"terminate called", "Aborted", "Segmentation fault", "core dumped", "internal error",
                            "stack trace", "#0 "}) {
    EXPECT_EQ(r.err.find(crash), std::string::npos) << crash << " in: " << r.err;
  }
}

class MalformedQuantCli : public ::testing::TestWithParam<CliCase> {};

TEST_P(MalformedQuantCli, FailsCleanlyNamingThePath) {
  const CliCase& c = GetParam();
  TempDir dir("malformed_cli_" + c.name);
  const CliRun run = c.setup(dir.path());
  ASSERT_FALSE(HasFatalFailure());
  const CommandResult r = run_moeslim(run.args);
  expect_clean_failure(r, c.status, c.says, run.mentions);
  if (!run.must_not_exist.empty()) {
    EXPECT_FALSE(fs::exists(run.must_not_exist)) << run.must_not_exist;
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedQuantCli, ::testing::ValuesIn(kCliCases),
                         [](const ::testing::TestParamInfo<CliCase>& info) { return info.param.name; });

// An output directory without write permission. Root writes through mode 0555, so there the case cannot be
// made and is skipped (SavePathUnderARegularFile covers an uncreatable path for every user).
TEST(MalformedQuantCliPermissions, SavePathInReadOnlyDirectory) {
  TempDir dir("malformed_cli_readonly");
  const fs::path locked = dir.path() / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  const bool writable = ::access(locked.c_str(), W_OK) == 0;
  if (writable) {
    fs::permissions(locked, fs::perms::owner_all);
    GTEST_SKIP() << "running as root (or with CAP_DAC_OVERRIDE): a 0555 directory is still writable";
  }
  const std::string args = small_quant_args(dir.path(), locked / "out");
  const CommandResult r = run_moeslim(args);
  fs::permissions(locked, fs::perms::owner_all);  // so TempDir can clean up
  expect_clean_failure(r, 1, {"cannot create the temporary output directory", "Permission denied"},
                       {(locked / "out").string()});
  EXPECT_FALSE(fs::exists(locked / "out"));
}

}  // namespace
}  // namespace moeslim::testing
