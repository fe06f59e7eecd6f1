#include "paligemma/npz.h"

#include <zip.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>

#include "paligemma/error.h"

namespace pg {

namespace {

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }  // read-only: nothing to write back
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

std::string zip_code_message(int code) {
  zip_error_t err;
  zip_error_init_with_code(&err, code);
  std::string msg = zip_error_strerror(&err);
  zip_error_fini(&err);
  return msg;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Npz Npz::read(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    throw Error("cannot open " + path + ": " + std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) throw Error("cannot open " + path + ": it is a directory, not a .npz file");

  int code = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  if (!archive) {
    if (code == ZIP_ER_NOZIP || code == ZIP_ER_INCONS)
      throw Error(path + " is not a .npz file (not a valid zip archive: " + zip_code_message(code) + ")");
    throw Error("cannot open " + path + " as a .npz (zip) archive: " + zip_code_message(code));
  }

  Npz npz;
  npz.path_ = path;
  const zip_int64_t n = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &zs) != 0 || !(zs.valid & ZIP_STAT_NAME))
      throw Error(path + ": cannot read zip entry " + std::to_string(i) + ": " + zip_strerror(archive.get()));
    const std::string member = zs.name;
    if (!ends_with(member, ".npy")) continue;
    const std::string where = path + ":" + member;
    if (!(zs.valid & ZIP_STAT_SIZE)) throw Error(where + ": the zip entry has no size");
    // vae-oid.npz is tens of MB; a member declaring more than this is not one we can use and
    // would otherwise be allocated before anything else is checked.
    constexpr zip_uint64_t kMaxMemberBytes = zip_uint64_t{1} << 31;
    if (zs.size > kMaxMemberBytes)
      throw Error(where + ": declares " + std::to_string(zs.size) + " bytes, more than the 2 GiB this reader accepts");
    std::unique_ptr<zip_file_t, ZipFileCloser> f(zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0));
    if (!f) throw Error(where + ": cannot open the zip member: " + zip_strerror(archive.get()));
    std::vector<uint8_t> data(static_cast<size_t>(zs.size));
    size_t got = 0;
    while (got < data.size()) {
      const zip_int64_t r = zip_fread(f.get(), data.data() + got, data.size() - got);
      if (r < 0) throw Error(where + ": cannot read the zip member: " + zip_file_strerror(f.get()));
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    if (got != data.size())
      throw Error(where + ": the zip member is truncated (" + std::to_string(got) + " of " +
                  std::to_string(data.size()) + " bytes)");
    // Check the stream end (libzip verifies the CRC when the whole member has been read).
    uint8_t extra;
    if (zip_fread(f.get(), &extra, 1) < 0)
      throw Error(where + ": cannot read the zip member: " + zip_file_strerror(f.get()));
    std::string key = member.substr(0, member.size() - 4);
    npz.arrays_[key] = parse_npy(data.data(), data.size(), where);
  }
  return npz;
}

const NpyArray& Npz::get(const std::string& key) const {
  auto it = arrays_.find(key);
  if (it == arrays_.end()) throw Error(path_ + " has no array '" + key + "'");
  return it->second;
}

std::vector<std::string> Npz::keys() const {
  std::vector<std::string> out;
  out.reserve(arrays_.size());
  for (const auto& [k, v] : arrays_) out.push_back(k);
  return out;
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays) {
  const std::string tmp = path + ".tmp";
  std::vector<std::vector<uint8_t>> members;  // libzip reads the buffers at zip_close
  members.reserve(arrays.size());
  for (const auto& [key, array] : arrays) members.push_back(encode_npy(array, path + ":" + key + ".npy"));
  int code = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!z) throw Error("cannot create " + path + ": " + zip_code_message(code));
  auto fail = [&](const std::string& what) {
    const std::string msg = "cannot write " + path + ": " + what + ": " + zip_strerror(z);
    zip_discard(z);
    std::remove(tmp.c_str());
    throw Error(msg);
  };
  for (size_t i = 0; i < arrays.size(); ++i) {
    zip_source_t* src = zip_source_buffer(z, members[i].data(), members[i].size(), 0);
    if (!src) fail("zip_source_buffer");
    const zip_int64_t index = zip_file_add(z, (arrays[i].first + ".npy").c_str(), src, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(src);
      fail("adding " + arrays[i].first);
    }
    if (zip_set_file_compression(z, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) fail("compression");
  }
  if (zip_close(z) != 0) fail("closing the archive");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + ": " + std::strerror(e));
  }
}

}  // namespace pg
