#pragma once
// Every failure the library can report is a pg::Error: a message that names the file,
// tensor, field or input that is wrong. The library never aborts the process; callers
// (CLI, server, tests) catch pg::Error and turn it into an exit code or error response.
#include <stdexcept>
#include <string>

namespace pg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace pg
