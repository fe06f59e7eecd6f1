#pragma once
// Scratch storage aligned to a cache line, for kernel operands. AMX tile loads
// and AVX-512 loads that straddle two cache lines cost twice the L1/L2
// accesses: a 64-byte tile row at a 16-byte offset (what malloc gives) made the
// AMX products ~40% slower. The elements are left uninitialised on resize:
// every user writes them before reading.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace pg::kernels {

constexpr std::size_t kCacheLine = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U> &) {}
  T *allocate(std::size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(kCacheLine))); }
  void deallocate(T *p, std::size_t) { ::operator delete(p, std::align_val_t(kCacheLine)); }
  // Default-initialise (no zeroing) on resize.
  template <typename U>
  void construct(U *p) noexcept {
    ::new (static_cast<void *>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U *p, Args &&...args) {
    ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const CacheLineAllocator<U> &) const {
    return true;
  }
};

template <typename T>
using AlignedBuffer = std::vector<T, CacheLineAllocator<T>>;

inline bool cache_line_aligned(const void *p) { return reinterpret_cast<std::uintptr_t>(p) % kCacheLine == 0; }

}  // namespace pg::kernels
