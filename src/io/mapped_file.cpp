#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "paligemma/error.h"

namespace pg {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error("cannot open " + path + ": " + errno_text(err));
  }
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    throw Error("cannot stat " + path + ": " + errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) throw Error("cannot map " + path + ": it is a directory");
  if (!S_ISREG(st.st_mode)) throw Error("cannot map " + path + ": not a regular file");
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;  // mmap of length 0 is invalid; an empty mapping is fine.
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    size_ = 0;
    throw Error("cannot memory-map " + path + " (" + std::to_string(st.st_size) +
                " bytes): " + errno_text(err));
  }
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  path_.clear();
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {
  other.path_.clear();
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    other.path_.clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::advise(int advice, size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  if (length > size_ - offset) length = size_ - offset;
  // madvise needs a page-aligned start.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t aligned = offset - offset % page;
  ::madvise(const_cast<uint8_t*>(data_) + aligned, length + (offset - aligned), advice);
}

void MappedFile::populate() const {
  if (data_ == nullptr) return;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
  if (::madvise(const_cast<uint8_t*>(data_), size_, MADV_POPULATE_READ) == 0) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < size_; i += page) sink = sink ^ data_[i];
  (void)sink;
}

void MappedFile::advise_willneed(size_t offset, size_t length) const {
  advise(MADV_WILLNEED, offset, length);
}
void MappedFile::advise_sequential(size_t offset, size_t length) const {
  advise(MADV_SEQUENTIAL, offset, length);
}
void MappedFile::advise_random(size_t offset, size_t length) const {
  advise(MADV_RANDOM, offset, length);
}

}  // namespace pg
