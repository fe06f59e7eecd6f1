#pragma once
// Helpers shared by the tests: fixture paths, temporary directories, running the CLI.
#include <string>

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
// Runs a shell command line and captures its output.
CommandResult run_command(const std::string& command_line);

}  // namespace pg::test
