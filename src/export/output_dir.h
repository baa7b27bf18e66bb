// The output directory as a transaction: everything is written into a temporary sibling of --save_path and
// renamed into place by commit(), so a failed or interrupted run never leaves a half-written model where a
// loader (or a later --force run) would take it for a complete one.
#pragma once

#include <filesystem>

namespace moeslim::exporter {

class OutputDir {
 public:
  // Checks the paths and creates "<save_path>.moeslim-tmp-<pid>":
  //  * kInvalidArgument (naming both) if save_path is model_path, lies inside it, or contains it (symlinks
  //    resolved, so --force can never delete the input);
  //  * kInvalidArgument if save_path exists and is not a directory, or is a non-empty directory and `force`
  //    is false;
  //  * kIo naming the path if a directory cannot be created.
  // First, what killed earlier runs left (their process is gone) is cleaned up, with a log line: temporary
  // siblings "<save_path>.moeslim-tmp-<pid>" are removed; a "<save_path>.moeslim-old-<pid>" (a previous output
  // moved aside by commit()) is put back when save_path is missing, else removed.
  OutputDir(const std::filesystem::path& model_path, const std::filesystem::path& save_path, bool force);
  // Without commit(): removes the temporary directory and everything in it (never throws).
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  // Where to write (an absolute path).
  const std::filesystem::path& temp_path() const { return temp_; }
  // The final directory (absolute, normalised).
  const std::filesystem::path& save_path() const { return save_; }

  // Renames the temporary directory to save_path. When save_path exists (allowed because it was empty or
  // `force` was given): moves it aside to "<save_path>.moeslim-old-<pid>", renames the new one into place,
  // then deletes the old one, so save_path is never missing a complete model for longer than two renames.
  // kIo naming the path on failure (the old directory is put back); kInvalidArgument if called twice or if a
  // non-empty save_path appeared since construction without `force`.
  void commit();
  bool committed() const { return committed_; }

 private:
  std::filesystem::path save_;
  std::filesystem::path temp_;
  bool force_ = false;
  bool committed_ = false;
};

}  // namespace moeslim::exporter
