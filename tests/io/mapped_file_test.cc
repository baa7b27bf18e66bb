#include "io/mapped_file.h"

#include <gtest/gtest.h>

#include <string>

#include "common/test_paths.h"
#include "io_test_util.h"

namespace moeslim::io {
namespace {

using moeslim::testing::TempDir;

TEST(MappedFile, EmptyFileMapsToNothing) {
  TempDir dir("mapped_file");
  testing::write_bytes(dir.path() / "empty", "");
  const auto m = MappedFile::open(dir.path() / "empty");
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->data(), nullptr);
  m->advise_dontneed(0, 100);  // no-op, no crash
}

TEST(MappedFile, ContentSurvivesDroppingPages) {
  TempDir dir("mapped_file");
  std::string bytes(3 * 4096 + 123, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  testing::write_bytes(dir.path() / "f", bytes);
  const auto m = MappedFile::open(dir.path() / "f");
  ASSERT_EQ(m->size(), bytes.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), bytes);
  m->advise_dontneed(100, 5000);           // unaligned: widened to whole pages
  m->advise_dontneed(4096 * 3, 1u << 30);  // clipped to the file
  m->advise_dontneed(m->size() + 10, 10);  // entirely past the end: ignored
  m->advise_willneed(0, m->size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), bytes);
  EXPECT_EQ(m->path(), dir.path() / "f");
}

TEST(MappedFile, MissingFileIsAnIoErrorNamingIt) {
  TempDir dir("mapped_file");
  testing::expect_error([&] { MappedFile::open(dir.path() / "nope"); }, ErrorCode::kIo, (dir.path() / "nope").string(),
                        "", "cannot open for reading");
}

TEST(MappedFile, DirectoryIsRejected) {
  TempDir dir("mapped_file");
  testing::expect_error([&] { MappedFile::open(dir.path()); }, ErrorCode::kIo, dir.path().string(), "",
                        "not a regular file");
}

}  // namespace
}  // namespace moeslim::io
