#pragma once
// Whole-file reads for small files (config.json, index.json, .npy); weights are mmapped instead.
#include <string>

namespace pg {

// The file's bytes; throws pg::Error "cannot open PATH: reason" / "cannot read PATH".
std::string read_file(const std::string& path);

}  // namespace pg
