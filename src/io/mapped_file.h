#pragma once
// A whole file memory-mapped read-only (PROT_READ, MAP_PRIVATE). RAII and move-only: the
// mapping lives exactly as long as the object. TensorViews point into it, so holders
// (Checkpoint) keep it in a shared_ptr.
#include <cstddef>
#include <cstdint>
#include <string>

namespace pg {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`. Throws pg::Error naming the file when it cannot be opened, stat'ed or
  // mapped. An empty file is allowed: data() is then nullptr and size() 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return data_ != nullptr || !path_.empty(); }

  // Paging hints for [offset, offset + length) (clamped to the file); failures are ignored.
  void advise_willneed(size_t offset = 0, size_t length = SIZE_MAX) const;
  // Reads the whole mapping into the page cache and fills this process's page tables now
  // (MADV_POPULATE_READ; touching each page on older kernels), so the first pass of the
  // kernels over the weights does not pay ~1.5 million page faults on a 6 GB file.
  void populate() const;
  void advise_sequential(size_t offset = 0, size_t length = SIZE_MAX) const;
  void advise_random(size_t offset = 0, size_t length = SIZE_MAX) const;

 private:
  void advise(int advice, size_t offset, size_t length) const;
  void reset() noexcept;

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pg
