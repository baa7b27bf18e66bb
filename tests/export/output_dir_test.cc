// OutputDir: path checks, the temporary sibling, commit, cleanup on failure, stale temporaries, --force.
#include <gtest/gtest.h>

#include <fstream>

#include "common/test_paths.h"
#include "core/error.h"
#include "export/output_dir.h"

namespace moeslim::exporter {
namespace {

namespace fs = std::filesystem;
using moeslim::testing::TempDir;

void touch(const fs::path& p, const std::string& text = "x") {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// Runs `f`, which must throw kInvalidArgument whose message names every one of `paths`.
template <typename F>
void expect_refused(F&& f, const std::vector<fs::path>& paths, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    for (const auto& p : paths) EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

struct Dirs {
  TempDir root{"export_outdir"};
  fs::path model = fs::weakly_canonical(root.path()) / "model";
  fs::path save = fs::weakly_canonical(root.path()) / "out";
  Dirs() { touch(model / "config.json"); }
};

TEST(OutputDir, RefusesSavePathEqualToInsideOrContainingTheModel) {
  const Dirs d;
  expect_refused([&] { OutputDir(d.model, d.model, true); }, {d.model}, "same directory");
  expect_refused([&] { OutputDir(d.model, d.model / "quant", true); }, {d.model, d.model / "quant"}, "inside");
  expect_refused([&] { OutputDir(d.model, d.model / "a" / ".." / ".", true); }, {d.model}, "same directory");
  expect_refused([&] { OutputDir(d.model, d.model.parent_path(), true); }, {d.model, d.model.parent_path()},
                 "contains");
  // Through a symlink: the link resolves into the model directory.
  fs::create_directory_symlink(d.model, d.root.path() / "link");
  expect_refused([&] { OutputDir(d.model, d.root.path() / "link" / "out", true); }, {d.model}, "inside");
  // A sibling whose name merely starts with the model's is fine.
  OutputDir ok(d.model, d.model.string() + "-w8a8", false);
}

TEST(OutputDir, RefusesANonEmptySavePathWithoutForce) {
  const Dirs d;
  touch(d.save / "old.safetensors");
  expect_refused([&] { OutputDir(d.model, d.save, false); }, {d.save}, "--force");
  touch(d.root.path() / "file");
  expect_refused([&] { OutputDir(d.model, d.root.path() / "file", true); }, {d.root.path() / "file"},
                 "not a directory");
}

TEST(OutputDir, WritesIntoATemporarySiblingAndCommitRenamesIt) {
  const Dirs d;
  fs::create_directory(d.save);  // an existing empty directory is fine without --force
  OutputDir out(d.model, d.save, false);
  EXPECT_EQ(out.temp_path(), fs::path(d.save.string() + ".moeslim-tmp-" + std::to_string(::getpid())));
  EXPECT_TRUE(fs::is_directory(out.temp_path()));
  touch(out.temp_path() / "config.json");
  EXPECT_FALSE(fs::exists(d.save / "config.json"));
  out.commit();
  EXPECT_TRUE(fs::exists(d.save / "config.json"));
  EXPECT_FALSE(fs::exists(out.temp_path()));
  EXPECT_THROW(out.commit(), Error);
}

TEST(OutputDir, AFailureBeforeCommitLeavesNothingBehind) {
  const Dirs d;
  fs::path temp;
  try {
    OutputDir out(d.model, d.save, false);
    temp = out.temp_path();
    touch(out.temp_path() / "quant_model_weight_w8a8_dynamic-00001-of-00001.safetensors");
    throw std::runtime_error("calibration failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(temp.empty());
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(d.save));
}

TEST(OutputDir, RemovesStaleTemporariesOfDeadProcessesOnly) {
  const Dirs d;
  const fs::path stale = d.save.string() + ".moeslim-tmp-999999999";  // above any pid_max: no such process
  const fs::path live = d.save.string() + ".moeslim-tmp-1";           // init is always alive
  const fs::path other = d.save.string() + "-other.moeslim-tmp-999999999";
  touch(stale / "part.safetensors");
  fs::create_directory(live);
  fs::create_directory(other);
  {
    OutputDir out(d.model, d.save, false);
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_TRUE(fs::exists(live));
    EXPECT_TRUE(fs::exists(other));  // another save path's temporary
  }
  fs::remove_all(live);
  fs::remove_all(other);
}

// A run killed between commit()'s two renames leaves no save_path and the previous output aside: the next
// run puts it back (and, without --force, then refuses to overwrite it); with save_path present, an aside
// copy is stale and removed.
TEST(OutputDir, RestoresAPreviousOutputAKilledCommitHadMovedAside) {
  const Dirs d;
  const fs::path aside = d.save.string() + ".moeslim-old-999999999";
  touch(aside / "config.json");
  expect_refused([&] { OutputDir(d.model, d.save, false); }, {d.save}, "not empty");
  EXPECT_TRUE(fs::exists(d.save / "config.json"));
  EXPECT_FALSE(fs::exists(aside));

  touch(aside / "stale.json");
  { OutputDir out(d.model, d.save, true); }
  EXPECT_FALSE(fs::exists(aside));
  EXPECT_TRUE(fs::exists(d.save / "config.json"));
  EXPECT_FALSE(fs::exists(d.save / "stale.json"));
}

TEST(OutputDir, ForceReplacesAnExistingOutput) {
  const Dirs d;
  touch(d.save / "old.txt");
  OutputDir out(d.model, d.save, true);
  touch(out.temp_path() / "new.txt");
  EXPECT_TRUE(fs::exists(d.save / "old.txt"));  // untouched until commit
  out.commit();
  EXPECT_TRUE(fs::exists(d.save / "new.txt"));
  EXPECT_FALSE(fs::exists(d.save / "old.txt"));
  for (const auto& e : fs::directory_iterator(d.save.parent_path())) {
    EXPECT_EQ(e.path().filename().string().find("moeslim-"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace moeslim::exporter
