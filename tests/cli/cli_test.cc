// The moeslim executable as a user runs it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "run_command.h"
#include "common/test_paths.h"

namespace moeslim::testing {
namespace {

TEST(Cli, HelpForEverySubcommand) {
  const CommandResult top = run_moeslim("--help");
  EXPECT_EQ(top.status, 0);
  for (const char* sub : {"info", "tokenize", "eval", "synth"}) {
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
    const CommandResult r = run_moeslim(std::string(sub) + " --help");
    EXPECT_EQ(r.status, 0) << sub;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << sub << " help has no example";
  }
  EXPECT_NE(run_moeslim("").status, 0);  // a subcommand is required
}

TEST(Cli, InfoOnBothSharedTinyModels) {
  for (const char* name : {"tiny-qwen3-moe", "tiny-qwen3-moe-outliers"}) {
    const CommandResult r = run_moeslim("info --model " + shell_quoted(source_dir() / "models" / name));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("4 (4 MoE, 0 dense MLP)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("8 query heads, 2 kv heads, head_dim 64"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("16, top-4, width 128"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("model-00001-of-00002.safetensors"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("0 missing, 0 with a wrong shape, 0 unexpected"), std::string::npos) << r.out;
  }
}

TEST(Cli, InfoReportsAnIncompleteCheckpoint) {
  TempDir dir("info_incomplete");
  // A config that asks for more layers than the checkpoint has.
  for (const auto& entry : std::filesystem::directory_iterator(bundled_model_dir())) {
    std::filesystem::copy(entry.path(), dir.path() / entry.path().filename());
  }
  auto config = nlohmann::json::parse(read_whole_file(dir.path() / "config.json"));
  config["num_hidden_layers"] = 5;
  std::ofstream(dir.path() / "config.json") << config.dump(2);
  const CommandResult r = run_moeslim("info --model " + shell_quoted(dir.path()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("MISSING   model.layers.4.input_layernorm.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("incomplete"), std::string::npos) << r.err;
}

TEST(Cli, InfoNamesTheBrokenConfigField) {
  TempDir dir("info_badcfg");
  std::ofstream(dir.path() / "config.json") << R"({"model_type": "qwen3_moe", "vocab_size": 10, "hidden_size": "big",
    "num_hidden_layers": 1, "num_attention_heads": 2})";
  const CommandResult r = run_moeslim("info --model " + shell_quoted(dir.path()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'hidden_size'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

TEST(Cli, TokenizeMatchesHuggingFaceIds) {
  const auto reference = nlohmann::json::parse(read_whole_file(test_data_dir() / "reference" / "tiny_tokenizer_ids.json"));
  TempDir dir("tokenize");
  nlohmann::json texts = nlohmann::json::array();
  for (std::size_t i = 0; i < 10; ++i) texts.push_back(reference[i]["text"]);
  std::ofstream(dir.path() / "in.json") << texts.dump();
  const CommandResult r = run_moeslim("tokenize --tokenizer " + shell_quoted(bundled_model_dir()) + " --input " +
                                      shell_quoted(dir.path() / "in.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto ids = nlohmann::json::parse(r.out);
  ASSERT_EQ(ids.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(ids[i], reference[i]["ids"]) << i;

  // JSONL input, --output file, and a tokenizer.json path instead of a directory.
  std::ofstream(dir.path() / "in.jsonl") << "{\"text\": \"Hello world!\"}\n\n{\"text\": \"数字123\"}\n";
  const CommandResult r2 = run_moeslim("tokenize --tokenizer " + shell_quoted(bundled_model_dir() / "tokenizer.json") +
                                       " --input " + shell_quoted(dir.path() / "in.jsonl") + " --output " +
                                       shell_quoted(dir.path() / "out.json"));
  ASSERT_EQ(r2.status, 0) << r2.err;
  const auto ids2 = nlohmann::json::parse(read_whole_file(dir.path() / "out.json"));
  ASSERT_EQ(ids2.size(), 2u);
  EXPECT_EQ(ids2[0], (nlohmann::json{1818, 337, 78, 1673, 0}));
}

TEST(Cli, TokenizeRejectsABadDataset) {
  TempDir dir("tokenize_bad");
  std::ofstream(dir.path() / "bad.json") << "[\"ok\", 3]";
  const CommandResult r = run_moeslim("tokenize --tokenizer " + shell_quoted(bundled_model_dir()) + " --input " +
                                      shell_quoted(dir.path() / "bad.json"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace moeslim::testing
