// Drawing the world in integer arithmetic: shapes sampled at pixel centres in 1/8-pixel fixed
// point, backgrounds as integer gradients and hashed noise. No floating point, so the pixels
// are the same on every machine and compiler.
#include <algorithm>
#include <array>

#include "world/world_internal.h"

namespace pg::world {
namespace {

struct Pt {
  int64_t x, y;
};

// Crossing-number test, exact in integers (edges that span py: is px left of the crossing?).
bool polygon_contains(const Pt* v, int n, int64_t px, int64_t py) {
  bool inside = false;
  for (int i = 0, j = n - 1; i < n; j = i++) {
    const Pt& a = v[j];
    const Pt& b = v[i];
    if ((a.y > py) == (b.y > py)) continue;
    const int64_t dy = b.y - a.y, dx = b.x - a.x;
    const int64_t lhs = (px - a.x) * dy, rhs = (py - a.y) * dx;
    if (dy > 0 ? lhs < rhs : lhs > rhs) inside = !inside;
  }
  return inside;
}

// cos / sin of -90 + 36 k degrees, times 1e6 (y grows downwards: k = 0 points up).
constexpr int64_t kStarCos[10] = {0, 587785, 951057, 951057, 587785, 0, -587785, -951057, -951057, -587785};
constexpr int64_t kStarSin[10] = {-1000000, -809017, -309017, 309017, 809017,
                                  1000000,  809017,  309017,  -309017, -809017};

// cos / sin of 60 k degrees, times 1e6: a hexagon with a flat top and bottom.
constexpr int64_t kHexagonCos[6] = {1000000, 500000, -500000, -1000000, -500000, 500000};
constexpr int64_t kHexagonSin[6] = {0, 866025, 866025, 0, -866025, -866025};

}  // namespace

bool shape_contains(const ShapeGeometry& g, int64_t px, int64_t py) {
  const int64_t dx = px - g.cx, dy = py - g.cy, r = g.r;
  switch (g.shape) {
    case WorldShape::Circle:
      return dx * dx + dy * dy <= r * r;
    case WorldShape::Ring: {
      const int64_t d2 = dx * dx + dy * dy, ri = r * 55 / 100;
      return d2 <= r * r && d2 > ri * ri;
    }
    case WorldShape::Square: {
      const int64_t s = r * 85 / 100;
      return std::max(dx, -dx) <= s && std::max(dy, -dy) <= s;
    }
    case WorldShape::Rectangle: {
      const int64_t a = r, b = r * 42 / 100;
      const int64_t hx = g.vertical ? b : a, hy = g.vertical ? a : b;
      return std::max(dx, -dx) <= hx && std::max(dy, -dy) <= hy;
    }
    case WorldShape::Triangle: {
      const Pt v[3] = {{0, -r}, {r, r * 80 / 100}, {-r, r * 80 / 100}};
      return polygon_contains(v, 3, dx, dy);
    }
    case WorldShape::Star: {
      Pt v[10];
      const int64_t ri = r * 45 / 100;
      for (int k = 0; k < 10; ++k) {
        const int64_t rad = (k % 2 == 0) ? r : ri;
        v[k] = {rad * kStarCos[k] / 1000000, rad * kStarSin[k] / 1000000};
      }
      return polygon_contains(v, 10, dx, dy);
    }
    case WorldShape::Hexagon: {
      Pt v[6];
      for (int k = 0; k < 6; ++k) v[k] = {r * kHexagonCos[k] / 1000000, r * kHexagonSin[k] / 1000000};
      return polygon_contains(v, 6, dx, dy);
    }
  }
  return false;
}

void shape_pixel_extent(const ShapeGeometry& g, int size, int& x0, int& y0, int& x1, int& y1) {
  x0 = int(std::clamp<int64_t>((g.cx - g.r) / kQ - 1, 0, size));
  y0 = int(std::clamp<int64_t>((g.cy - g.r) / kQ - 1, 0, size));
  x1 = int(std::clamp<int64_t>((g.cx + g.r) / kQ + 2, 0, size));
  y1 = int(std::clamp<int64_t>((g.cy + g.r) / kQ + 2, 0, size));
}

void draw_background(Image& image, int size, Rng& rng) {
  // Muted mid-tones: every object colour (saturated, or white / black) stands out from them.
  static constexpr std::array<uint8_t, 3> kBackgrounds[] = {
      {120, 120, 120}, {150, 145, 130}, {105, 120, 135}, {172, 170, 160},
      {100, 110, 100}, {140, 150, 165}, {160, 140, 140}, {125, 135, 115}};
  constexpr int kCount = int(sizeof(kBackgrounds) / sizeof(kBackgrounds[0]));
  const int kind = int(rng.uniform(0, 4));  // flat, horizontal, vertical, diagonal, noise
  const auto& c0 = kBackgrounds[rng.uniform(0, kCount - 1)];
  const auto& c1 = kBackgrounds[rng.uniform(0, kCount - 1)];
  const uint64_t noise_seed = rng.next();
  image.width = image.height = size;
  image.rgb.assign(size_t(size) * size_t(size) * 3, 0);
  const int64_t span = std::max(size - 1, 1);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      int64_t t = 0, den = 1;  // weight of c1: t / den
      if (kind == 1) t = x, den = span;
      else if (kind == 2) t = y, den = span;
      else if (kind == 3) t = x + y, den = 2 * span;
      int noise = 0;
      if (kind == 4) noise = int(splitmix64_hash(noise_seed ^ (uint64_t(y) * uint64_t(size) + uint64_t(x))) % 25) - 12;
      uint8_t* p = &image.rgb[(size_t(y) * size_t(size) + size_t(x)) * 3];
      for (int k = 0; k < 3; ++k) {
        const int64_t v = (int64_t(c0[k]) * (den - t) + int64_t(c1[k]) * t) / den + noise;
        p[k] = uint8_t(std::clamp<int64_t>(v, 0, 255));
      }
    }
}

}  // namespace pg::world
