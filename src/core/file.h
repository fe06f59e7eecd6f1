#pragma once
// Whole-file reads for small files (config.json, index.json, .npy); weights are mmapped instead.
#include <string>

namespace pg {

// The file's bytes; throws pg::Error "cannot open PATH: reason" / "cannot read PATH".
std::string read_file(const std::string& path);

// Makes `dir` ready to be written into: creates it (returns true) or accepts it empty
// (returns false). Throws pg::Error, prefixed with `what` ("init", ...), when it is empty,
// a file, not empty, or cannot be created.
bool prepare_empty_output_dir(const std::string& dir, const std::string& what);

}  // namespace pg
