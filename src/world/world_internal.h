#pragma once
// Internals of the synthetic world (include/paligemma/world.h): the PRNG, shape geometry in
// integer fixed point, and the font cache.
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "paligemma/world.h"

namespace pg::world {

using pg::splitmix64_hash;

class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t next() { return splitmix64_next(state_); }
  // Uniform in [lo, hi] (inclusive; hi < lo gives lo): the high 64 bits of next() * range.
  int64_t uniform(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t range = uint64_t(hi - lo) + 1;
    return lo + int64_t((static_cast<unsigned __int128>(next()) * range) >> 64);
  }
  // True with probability p (p * 2^53 is exact, so the comparison is the same everywhere).
  bool chance(double p) { return double(next() >> 11) < p * 9007199254740992.0; }

 private:
  uint64_t state_;
};

// The stream of one purpose (0: the scene; 100 + task: that task's choices) of image `index`.
inline Rng stream(uint64_t seed, int64_t index, uint64_t purpose) {
  return Rng(splitmix64_hash(splitmix64_hash(seed) ^ splitmix64_hash(uint64_t(index) * 0x2545F4914F6CDD1Dull + purpose)));
}

// Fixed point: kQ units per pixel; pixel (x, y) is sampled at its centre (kQ x + kQ/2, ...).
inline constexpr int64_t kQ = 8;

struct ShapeGeometry {
  WorldShape shape = WorldShape::Circle;
  int64_t cx = 0, cy = 0, r = 0;  // centre and radius (half extent), fixed point
  bool vertical = false;          // rectangles: the long side is vertical
};

// Whether the pixel centre (px, py) (fixed point) is inside the shape.
bool shape_contains(const ShapeGeometry& g, int64_t px, int64_t py);
// The pixel range [x0, x1) x [y0, y1) that may hold the shape, clipped to a size x size image.
void shape_pixel_extent(const ShapeGeometry& g, int size, int& x0, int& y0, int& x1, int& y1);

// Reads (once per path, cached) the font the text items use; pg::Error naming the file.
void load_world_font(const std::string& path);

// Fills `image` (size x size) with background kind / colours from rng.
void draw_background(Image& image, int size, Rng& rng);

}  // namespace pg::world
