// Status: how every Switchyard entry point reports failure.
//
// Contract: public functions never throw, never call exit()/abort(), and never write outside the
// buffers they were given. They return a Status; a non-ok Status carries a message that names the
// offending argument, the value it had and what was expected, e.g.
//   "route: top_k = 9: expected 1 <= top_k <= num_experts (8)".
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace switchyard {

enum class StatusCode : std::uint8_t {
  kOk = 0,
  kInvalidArgument,  // a caller error: shapes, dtypes, pointers, parameter values
  kUnsupported,      // valid request this build or device cannot serve (e.g. no CUDA)
  kCudaError,        // the CUDA runtime reported an error (launch, device query)
  kInternal,         // a bug in Switchyard
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string message) {
    return {StatusCode::kInvalidArgument, std::move(message)};
  }
  static Status Unsupported(std::string message) {
    return {StatusCode::kUnsupported, std::move(message)};
  }
  static Status CudaError(std::string message) {
    return {StatusCode::kCudaError, std::move(message)};
  }
  static Status Internal(std::string message) {
    return {StatusCode::kInternal, std::move(message)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>", or "ok".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace switchyard
