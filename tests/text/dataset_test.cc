// Calibration/evaluation dataset files: JSON arrays of strings and JSONL with "text", and their errors.
#include <gtest/gtest.h>

#include <fstream>

#include "common/test_paths.h"
#include "core/error.h"
#include "text/dataset.h"

namespace moeslim::testing {
namespace {

using Texts = std::vector<std::string>;

// Parses `content` as a file called "ds.json" and expects a kFormat error naming it and `field`.
void expect_format_error(const std::string& content, const std::string& field) {
  try {
    text::parse_text_dataset(content, "ds.json");
    ADD_FAILURE() << "expected an error for: " << content;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    EXPECT_EQ(e.file(), "ds.json") << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

TEST(Dataset, JsonArrayOfStrings) {
  EXPECT_EQ(text::parse_text_dataset(R"(["a", "", "c\nd"])", "x"), (Texts{"a", "", "c\nd"}));
  EXPECT_EQ(text::parse_text_dataset("\xEF\xBB\xBF  [\"bom\"]\n", "x"), Texts{"bom"});
}

TEST(Dataset, JsonLinesWithText) {
  EXPECT_EQ(text::parse_text_dataset("{\"text\": \"one\", \"kind\": \"en\"}\n\n  \n{\"text\": \"two\"}\r\n{\"text\":\"3\"}", "x"),
            (Texts{"one", "two", "3"}));
}

TEST(Dataset, JsonLinesWithMsModelSlimsCalibrationKey) {
  // lab_calib/mix_calib.jsonl of msModelSlim's one-click path keys its prompts "inputs_pretokenized".
  EXPECT_EQ(text::parse_text_dataset("{\"inputs_pretokenized\": \"p1\"}\n{\"text\": \"p2\"}", "x"), (Texts{"p1", "p2"}));
  expect_format_error("{\"inputs_pretokenized\": 3}", "line 1.inputs_pretokenized");
}

TEST(Dataset, Errors) {
  expect_format_error("", "");
  expect_format_error(" \n\t\n", "");
  expect_format_error("[\"a\", ", "");             // not JSON
  expect_format_error("[]", "");                   // no texts
  expect_format_error("[\"a\", 5, \"c\"]", "[1]");  // an element not a string
  expect_format_error("[\"a\", null]", "[1]");
  expect_format_error("{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n", "line 3.text");
  expect_format_error("{\"text\": \"a\"}\n{\"text\": 7}\n", "line 2.text");
  expect_format_error("{\"text\": \"a\"}\nnot json\n", "line 2");
  expect_format_error("{\"text\": \"a\"}\n[\"x\"]\n", "line 2");
  expect_format_error("\"just a string\"", "line 1");
}

TEST(Dataset, ReadsTheBundledFiles) {
  for (const char* name : {"qwen3-moe_calib_prompt_50.json", "qwen3-moe_anti_prompt_50.json"}) {
    const Texts texts = text::read_text_dataset(bundled_data_dir() / name);
    EXPECT_EQ(texts.size(), 48u) << name;
  }
  EXPECT_EQ(text::read_text_dataset(bundled_data_dir() / "eval_valid.jsonl").size(), 300u);
}

TEST(Dataset, FileErrorsNameThePath) {
  try {
    text::read_text_dataset(source_dir() / "no_such_dataset.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.file(), (source_dir() / "no_such_dataset.json").string());
  }
  TempDir dir("dataset");
  const auto path = dir.path() / "empty.jsonl";
  std::ofstream{path};
  try {
    text::read_text_dataset(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_EQ(e.file(), path.string());
  }
}

}  // namespace
}  // namespace moeslim::testing
