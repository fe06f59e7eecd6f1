#pragma once
// Helpers shared by the tests: fixture paths, temporary directories, running the CLI.
#include <string>

#include "paligemma/error.h"

namespace pg::test {

std::string fixtures_dir();                       // tests/fixtures
std::string fixture(const std::string& relative); // tests/fixtures/<relative>
std::string cli_path();                           // the built `paligemma` binary

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// The message of the pg::Error that `fn` throws, or "<no error>".
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const pg::Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Runs a shell command line and captures its output.
CommandResult run_command(const std::string& command_line);

}  // namespace pg::test
