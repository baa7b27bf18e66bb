#include "core/error.h"

namespace moeslim {
namespace {

std::string compose(const std::string& detail, const std::string& file, const std::string& field) {
  std::string message;
  if (!file.empty()) message += file + ": ";
  if (!field.empty()) message += "'" + field + "': ";
  message += detail;
  return message;
}

}  // namespace

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo: return "io";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kNotFound: return "not-found";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kInterrupted: return "interrupted";
  }
  return "unknown";
}

Error::Error(ErrorCode code, std::string detail, std::string file, std::string field)
    : std::runtime_error(compose(detail, file, field)),
      code_(code),
      detail_(std::move(detail)),
      file_(std::move(file)),
      field_(std::move(field)) {}

void rethrow_with_file(const Error& e, const std::string& file) {
  if (!e.file().empty()) throw e;
  throw Error(e.code(), e.detail(), file, e.field());
}

}  // namespace moeslim
