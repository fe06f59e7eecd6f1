#include "core/file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "paligemma/error.h"

namespace pg {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    throw Error("cannot open " + path + ": " + std::strerror(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path);
  return ss.str();
}

bool prepare_empty_output_dir(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  if (dir.empty()) throw Error(what + ": no output directory given");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw Error(what + ": " + dir + " exists and is not a directory");
    if (!fs::is_empty(dir, ec)) throw Error(what + ": output directory " + dir + " is not empty");
    return false;
  }
  fs::create_directories(dir, ec);
  if (ec) throw Error(what + ": cannot create " + dir + ": " + ec.message());
  return true;
}

}  // namespace pg
