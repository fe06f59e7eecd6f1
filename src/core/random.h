#pragma once
// Integer hashing and random streams written out in full, so that every machine and standard
// library draws the same numbers (std::*_distribution differ between implementations):
// dropout masks, sampling seeds, the synthetic world, weight initialisation.
#include <cstdint>
#include <string_view>

namespace pg {

// splitmix64 (Steele, Lea, Flood 2014): advances `state` and returns its next output.
inline uint64_t splitmix64_next(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The output splitmix64 gives from state x (a 64-bit mixing hash of x).
inline uint64_t splitmix64_hash(uint64_t x) { return splitmix64_next(x); }

// 64-bit FNV-1a of a string (e.g. a tensor name turned into a stream seed).
inline uint64_t fnv1a(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : text) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

}  // namespace pg
