#include "io/safetensors_reader.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/test_paths.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;
using testing::expect_error;
using testing::write_bytes;
using testing::write_raw_safetensors;

class SafetensorsReaderTest : public ::testing::Test {
 protected:
  // Writes a file from a header and data size, then expects open() to fail as described.
  void expect_rejected(std::string_view header, std::size_t data_bytes, ErrorCode code, const std::string& field,
                       std::string_view substring) {
    const auto path = dir_.path() / "bad.safetensors";
    write_raw_safetensors(path, header, data_bytes);
    expect_error([&] { SafetensorsFile::open(path); }, code, path.string(), field, substring);
  }
  std::filesystem::path path(const char* name) const { return dir_.path() / name; }

  TempDir dir_{"safetensors_reader"};
};

// ---- malformed files: each rule has its own test and message ----

TEST_F(SafetensorsReaderTest, RejectsFileShorterThanLengthPrefix) {
  write_bytes(path("short.safetensors"), "abc");
  expect_error([&] { SafetensorsFile::open(path("short.safetensors")); }, ErrorCode::kFormat,
               path("short.safetensors").string(), "", "shorter than the 8-byte header length prefix");
}

TEST_F(SafetensorsReaderTest, RejectsEmptyFile) {
  write_bytes(path("empty.safetensors"), "");
  expect_error([&] { SafetensorsFile::open(path("empty.safetensors")); }, ErrorCode::kFormat,
               path("empty.safetensors").string(), "", "file is 0 bytes");
}

TEST_F(SafetensorsReaderTest, RejectsZeroHeaderLength) {
  write_raw_safetensors(path("zero.safetensors"), "", 8);
  expect_error([&] { SafetensorsFile::open(path("zero.safetensors")); }, ErrorCode::kFormat,
               path("zero.safetensors").string(), "", "header length is 0");
}

TEST_F(SafetensorsReaderTest, RejectsHeaderLengthOverLimit) {
  write_raw_safetensors(path("huge.safetensors"), "{}", 0, 100'000'001);
  expect_error([&] { SafetensorsFile::open(path("huge.safetensors")); }, ErrorCode::kFormat,
               path("huge.safetensors").string(), "", "exceeds the limit of 100000000 bytes");
}

TEST_F(SafetensorsReaderTest, RejectsHeaderRunningPastEndOfFile) {
  write_raw_safetensors(path("past.safetensors"), "{}", 0, 1000);
  expect_error([&] { SafetensorsFile::open(path("past.safetensors")); }, ErrorCode::kFormat,
               path("past.safetensors").string(), "", "header length 1000 runs past the end of the file (10 bytes)");
}

TEST_F(SafetensorsReaderTest, RejectsInvalidUtf8) {
  expect_rejected("{\"w\xff\": {}}", 0, ErrorCode::kFormat, "", "not valid UTF-8 (byte 3");
}

TEST_F(SafetensorsReaderTest, RejectsInvalidJson) {
  expect_rejected("{\"w\": {\"dtype\": ", 0, ErrorCode::kFormat, "", "header is not valid JSON at line 1, column 16");
}

TEST_F(SafetensorsReaderTest, RejectsJsonThatIsNotAnObject) {
  expect_rejected("[1, 2]", 0, ErrorCode::kFormat, "", "header JSON is not an object but array");
}

TEST_F(SafetensorsReaderTest, RejectsDuplicateTensorName) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  8, ErrorCode::kFormat, "w", "duplicate key in the header JSON");
}

TEST_F(SafetensorsReaderTest, RejectsDuplicateKeyInsideEntry) {
  expect_rejected(R"({"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "duplicate key 'dtype' inside the header entry");
}

TEST_F(SafetensorsReaderTest, RejectsEntryThatIsNotAnObject) {
  expect_rejected(R"({"w":[0,4]})", 4, ErrorCode::kFormat, "w", "header entry is not an object");
}

TEST_F(SafetensorsReaderTest, RejectsMissingDtype) {
  expect_rejected(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "header entry has no 'dtype'");
}

TEST_F(SafetensorsReaderTest, RejectsMissingShape) {
  expect_rejected(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "header entry has no 'shape'");
}

TEST_F(SafetensorsReaderTest, RejectsMissingDataOffsets) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1]}})", 4, ErrorCode::kFormat, "w",
                  "header entry has no 'data_offsets'");
}

TEST_F(SafetensorsReaderTest, RejectsDtypeThatIsNotAString) {
  expect_rejected(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "'dtype' is not a string");
}

TEST_F(SafetensorsReaderTest, RejectsShapeThatIsNotAnArray) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "'shape' is not an array");
}

TEST_F(SafetensorsReaderTest, RejectsNegativeShapeEntry) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "'shape' must hold non-negative integers, found -1");
}

TEST_F(SafetensorsReaderTest, RejectsFractionalShapeEntry) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "'shape' must hold non-negative integers, found 1.5");
}

TEST_F(SafetensorsReaderTest, RejectsThreeDataOffsets) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8, ErrorCode::kFormat, "w",
                  "'data_offsets' must be [begin, end], found 3 numbers");
}

TEST_F(SafetensorsReaderTest, RejectsNegativeDataOffset) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4, ErrorCode::kFormat, "w",
                  "'data_offsets' must hold non-negative integers, found -4");
}

TEST_F(SafetensorsReaderTest, RejectsBeginAfterEnd) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4, ErrorCode::kFormat, "w",
                  "data_offsets [4, 0] have begin > end");
}

TEST_F(SafetensorsReaderTest, RejectsUnsupportedDtypesNamingThem) {
  for (const char* dtype : {"F64", "F8_E4M3", "BOOL"}) {
    SCOPED_TRACE(dtype);
    expect_rejected(std::string(R"({"w":{"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]}})", 8,
                    ErrorCode::kUnsupported, "w", std::string("dtype ") + dtype + " is not supported");
  }
}

TEST_F(SafetensorsReaderTest, RejectsUnknownDtype) {
  expect_rejected(R"({"w":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}})", 4, ErrorCode::kFormat, "w",
                  "unknown dtype 'Q4_K'");
}

TEST_F(SafetensorsReaderTest, RejectsShapeWhoseByteSizeOverflows) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4,
                  ErrorCode::kFormat, "w", "overflows 64 bits");
}

TEST_F(SafetensorsReaderTest, RejectsByteLengthNotMatchingShape) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20, ErrorCode::kFormat, "w",
                  "span 20 bytes but shape [2, 3] x F32 needs 24");
}

TEST_F(SafetensorsReaderTest, RejectsOffsetsPastDataArea) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, ErrorCode::kFormat, "w",
                  "run past the end of the data area (4 bytes)");
}

TEST_F(SafetensorsReaderTest, RejectsOverlappingRanges) {
  expect_rejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  12, ErrorCode::kFormat, "b", "overlap those of 'a' [0, 8]");
}

TEST_F(SafetensorsReaderTest, RejectsGapBetweenRanges) {
  expect_rejected(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  12, ErrorCode::kFormat, "b", "gap in the data area: bytes [4, 8)");
}

TEST_F(SafetensorsReaderTest, RejectsGapAtStartOfDataArea) {
  expect_rejected(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, ErrorCode::kFormat, "a",
                  "gap in the data area: bytes [0, 4)");
}

TEST_F(SafetensorsReaderTest, RejectsTrailingBytesAfterLastTensor) {
  expect_rejected(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6, ErrorCode::kFormat, "a",
                  "data area has 6 bytes but the tensors cover only 4: trailing bytes");
}

TEST_F(SafetensorsReaderTest, RejectsMetadataThatIsNotAnObject) {
  expect_rejected(R"({"__metadata__":"pt"})", 0, ErrorCode::kFormat, "__metadata__", "'__metadata__' is not an object");
}

TEST_F(SafetensorsReaderTest, RejectsMetadataValueThatIsNotAString) {
  expect_rejected(R"({"__metadata__":{"format":"pt","version":2}})", 0, ErrorCode::kFormat, "__metadata__",
                  "value of 'version' is not a string");
}

TEST_F(SafetensorsReaderTest, MissingFileIsAnIoError) {
  expect_error([&] { SafetensorsFile::open(path("absent.safetensors")); }, ErrorCode::kIo,
               path("absent.safetensors").string(), "", "No such file or directory");
}

// ---- valid edge cases ----

TEST_F(SafetensorsReaderTest, AcceptsTrailingSpacesMetadataEmptyTensorAndScalar) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"BF16","shape":[0,3],"data_offsets":[4,4]},"v":{"dtype":"I8","shape":[3],"data_offsets":[4,7]}})"
      "      ";
  write_raw_safetensors(path("ok.safetensors"), header, 7);
  const SafetensorsFile f = SafetensorsFile::open(path("ok.safetensors"));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.data_offset(), 8 + header.size());
  EXPECT_EQ(f.data_bytes(), 7u);

  const Tensor s = f.tensor("s");
  EXPECT_EQ(s.rank(), 0u);
  EXPECT_EQ(s.numel(), 1u);
  std::uint32_t bits;
  std::memcpy(&bits, s.bytes(), 4);
  EXPECT_EQ(bits, 0x03020100u);  // little-endian bytes 0, 1, 2, 3

  const Tensor e = f.tensor("e");
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_EQ(e.nbytes(), 0u);
  EXPECT_EQ(f.info("e").begin, f.info("e").end);

  const Tensor v = f.tensor("v");
  EXPECT_EQ(v.dtype(), DType::kI8);
  EXPECT_EQ(v.data<std::int8_t>()[2], 6);
}

TEST_F(SafetensorsReaderTest, AcceptsHeaderWithNoTensors) {
  write_raw_safetensors(path("none.safetensors"), "{}      ", 0);
  const SafetensorsFile f = SafetensorsFile::open(path("none.safetensors"));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(SafetensorsReaderTest, ListsTensorsByDataOffsetNotByName) {
  write_raw_safetensors(path("order.safetensors"),
                        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                        R"("z":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                        12);
  const SafetensorsFile f = SafetensorsFile::open(path("order.safetensors"));
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "z");
  EXPECT_EQ(f.tensors()[1].name, "a");
  EXPECT_EQ(f.info("a").begin, 8u);
  EXPECT_EQ(f.path(), path("order.safetensors"));
}

TEST_F(SafetensorsReaderTest, UnknownTensorIsNotFoundNamingFileAndTensor) {
  write_raw_safetensors(path("one.safetensors"), R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  const SafetensorsFile f = SafetensorsFile::open(path("one.safetensors"));
  EXPECT_TRUE(f.contains("a"));
  EXPECT_FALSE(f.contains("b"));
  expect_error([&] { f.tensor("b"); }, ErrorCode::kNotFound, path("one.safetensors").string(), "b", "no such tensor");
}

TEST_F(SafetensorsReaderTest, ViewOutlivesFileObjectAndSurvivesRelease) {
  write_raw_safetensors(path("v.safetensors"), R"({"a":{"dtype":"U8","shape":[10000],"data_offsets":[0,10000]}})",
                        10000);
  Tensor t;
  {
    const SafetensorsFile f = SafetensorsFile::open(path("v.safetensors"));
    t = f.tensor("a");
    f.prefetch("a");
    f.release("a");  // pages are dropped; the next read faults them back in from the file
  }
  EXPECT_TRUE(t.is_view());
  EXPECT_EQ(t.data<std::uint8_t>()[9999], 9999 & 0xff);
  EXPECT_EQ(t.data<std::uint8_t>()[257], 1);
}

}  // namespace
}  // namespace moeslim::io
