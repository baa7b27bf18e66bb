// Errors carry context: which file, which field or tensor, and what is wrong with it.
// Code below main() throws moeslim::Error; only the CLI turns it into an exit status.
#pragma once

#include <stdexcept>
#include <string>

namespace moeslim {

enum class ErrorCode {
  kIo,               // a file could not be opened, read, written, mapped or renamed
  kFormat,           // a file's contents violate its format (safetensors, JSON, tokenizer.json, ...)
  kInvalidArgument,  // a command-line value or API argument is out of range or inconsistent
  kUnsupported,      // well-formed but outside what moeslim implements (a dtype, a config option)
  kNotFound,         // a file, tensor or key that must exist does not
  kInternal,         // a broken invariant inside moeslim: a bug
  kInterrupted,      // the user asked the run to stop (Ctrl-C, SIGTERM)
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  // file: the path the problem is in (may be empty); field: the tensor, JSON key or option (may be empty).
  Error(ErrorCode code, std::string detail, std::string file = {}, std::string field = {});

  ErrorCode code() const { return code_; }
  const std::string& detail() const { return detail_; }
  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }

 private:
  ErrorCode code_;
  std::string detail_;
  std::string file_;
  std::string field_;
};

// Re-throws `e` with a file attached when it had none (used where the file is known only further up).
[[noreturn]] void rethrow_with_file(const Error& e, const std::string& file);

}  // namespace moeslim
