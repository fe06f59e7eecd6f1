#pragma once
// NumPy .npz archives (np.savez: stored; np.savez_compressed: deflated): a zip whose members
// are .npy files. Read whole, through libzip, each member parsed by pg::parse_npy. Used for
// big_vision's mask VQ-VAE weights (vae-oid.npz) and test fixtures.
#include <map>
#include <utility>
#include <string>
#include <vector>

#include "paligemma/npy.h"

namespace pg {

class Npz {
 public:
  // Reads every "*.npy" member (other members are ignored); the key is the member name
  // without ".npy", as numpy's np.load(...)[key]. Throws pg::Error naming the file when it
  // is missing, not a zip, or a member cannot be read or parsed ("FILE:MEMBER: ...").
  static Npz read(const std::string& path);

  const std::string& path() const { return path_; }
  bool contains(const std::string& key) const { return arrays_.count(key) != 0; }
  // Throws pg::Error "FILE has no array 'KEY'" when absent.
  const NpyArray& get(const std::string& key) const;
  std::vector<std::string> keys() const;  // sorted
  size_t size() const { return arrays_.size(); }

 private:
  std::string path_;
  std::map<std::string, NpyArray> arrays_;
};

// Writes `arrays` as an uncompressed .npz (np.savez's layout: one KEY.npy member each, in the
// given order) to `path`, through a temporary file renamed into place, so a reader never sees a
// half-written archive. pg::Error naming the path when it cannot be created or written.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays);

inline Npz read_npz(const std::string& path) { return Npz::read(path); }

}  // namespace pg
