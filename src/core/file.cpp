#include "core/file.h"

#include <cerrno>
#include <cstring>
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

}  // namespace pg
