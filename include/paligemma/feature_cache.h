#pragma once
// Image features by image content: the same preprocessed image (same pixels, same
// resolution) asked several questions is encoded once. Keyed by a 64-bit hash of the pixel
// values and confirmed by comparing them in full, so a hash collision can never return
// another image's features. Least-recently-used entries are dropped beyond `capacity`.
// Thread-safe.
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace pg {

class ImageFeatureCache {
 public:
  using Features = std::shared_ptr<const std::vector<float>>;
  explicit ImageFeatureCache(size_t capacity = 8) : capacity_(capacity) {}

  // The features of `pixels`, computing them with `encode` on a miss (outside the lock).
  Features get_or_compute(const std::vector<float>& pixels,
                          const std::function<std::vector<float>(const std::vector<float>&)>& encode);

  size_t hits() const;
  size_t misses() const;
  size_t size() const;
  void set_capacity(size_t capacity);  // 0 disables caching
  void clear();

 private:
  struct Entry {
    uint64_t hash;
    std::vector<float> pixels;
    Features features;
  };
  mutable std::mutex mu_;
  std::list<Entry> entries_;  // front = most recently used
  size_t capacity_;
  size_t hits_ = 0, misses_ = 0;
};

// 64-bit FNV-1a over the values' bytes, with the count mixed in.
uint64_t hash_pixels(const std::vector<float>& pixels);

}  // namespace pg
