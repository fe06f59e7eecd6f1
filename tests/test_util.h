#pragma once
// Helpers shared by the tests: fixture paths, temporary directories, running the CLI.
#include <string>

#include "paligemma/error.h"

#include "paligemma/backend.h"

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

// Restores the process-wide kernel path and precision when it goes out of scope; tests that
// force a path or precision hold one.
class BackendGuard {
 public:
  BackendGuard() : path_(pg::kernel_path()), precision_(pg::precision()) {}
  ~BackendGuard() {
    pg::set_kernel_path(path_);
    pg::set_precision(precision_);
  }

 private:
  pg::KernelPath path_;
  pg::Precision precision_;
};

}  // namespace pg::test
