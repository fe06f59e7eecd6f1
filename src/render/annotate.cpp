// Drawing boxes, masks and label tags (stb_truetype text through render/font.h).
#include "paligemma/annotate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "paligemma/error.h"
#include "render/font.h"

namespace pg {
namespace {

using Rgb = std::array<uint8_t, 3>;

constexpr Rgb kPalette[] = {
    {230, 25, 75},   // red
    {60, 180, 75},   // green
    {0, 130, 200},   // blue
    {245, 130, 48},  // orange
    {145, 30, 180},  // purple
    {70, 240, 240},  // cyan
    {240, 50, 230},  // magenta
    {210, 245, 60},  // lime
    {255, 225, 25},  // yellow
    {250, 190, 212}, // pink
};
constexpr size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

struct Canvas {
  Image& img;
  void blend(int x, int y, const Rgb& c, float a) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height || a <= 0.f) return;
    uint8_t* p = &img.rgb[(size_t(y) * size_t(img.width) + size_t(x)) * 3];
    if (a >= 1.f) {
      p[0] = c[0], p[1] = c[1], p[2] = c[2];
      return;
    }
    for (int k = 0; k < 3; ++k) p[k] = uint8_t(std::lround((1.f - a) * float(p[k]) + a * float(c[k])));
  }
  void fill(int x0, int y0, int x1, int y1, const Rgb& c) {  // [x0, x1) x [y0, y1), clipped
    x0 = std::max(x0, 0), y0 = std::max(y0, 0);
    x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        uint8_t* p = &img.rgb[(size_t(y) * size_t(img.width) + size_t(x)) * 3];
        p[0] = c[0], p[1] = c[1], p[2] = c[2];
      }
  }
};

// The pixels a box outline covers, [x0, x1) x [y0, y1): outward to whole pixels so the outline
// encloses the box (a mask is pasted with rounded edges: pg::pixel_box), unclipped but bounded
// so that int math is safe.
struct OutlineExtent {
  int x0, y0, x1, y1;
};

bool outline_extent(const Box& b, int width, int height, OutlineExtent& out) {
  if (std::isnan(b.x0) || std::isnan(b.y0) || std::isnan(b.x1) || std::isnan(b.y1)) return false;
  const double lim = 1e8;
  auto c = [&](double v) { return std::clamp(v, -lim, lim); };
  const double xa = c(std::min(b.x0, b.x1)), xb = c(std::max(b.x0, b.x1));
  const double ya = c(std::min(b.y0, b.y1)), yb = c(std::max(b.y0, b.y1));
  out.x0 = int(std::floor(xa));
  out.x1 = std::max(int(std::ceil(xb)), out.x0 + 1);
  out.y0 = int(std::floor(ya));
  out.y1 = std::max(int(std::ceil(yb)), out.y0 + 1);
  return out.x1 > 0 && out.y1 > 0 && out.x0 < width && out.y0 < height;
}

using render::Font;
using render::TextLayout;
using render::utf8_codepoints;

TextLayout measure(const Font& font, const std::vector<uint32_t>& cps, float px) { return font.measure(cps, px); }

void draw_text(Canvas& canvas, const Font& font, const std::vector<uint32_t>& cps, const TextLayout& t, int left,
               int top, const Rgb& color) {
  font.draw(cps, t, left, top, [&](int x, int y, unsigned char a) { canvas.blend(x, y, color, float(a) / 255.f); });
}

std::string tag_text(const Annotation& a) {
  std::string s = a.label;
  if (std::isfinite(a.confidence)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", a.confidence);
    if (!s.empty()) s += ' ';
    s += buf;
  }
  return s;
}

}  // namespace

std::array<uint8_t, 3> annotation_color(size_t index) { return kPalette[index % kPaletteSize]; }

Image annotate_image(const Image& image, const std::vector<Annotation>& objects, const AnnotateOptions& options) {
  if (image.width < 0 || image.height < 0 ||
      image.rgb.size() != size_t(image.width) * size_t(image.height) * 3)
    throw Error("annotate_image: image data holds " + std::to_string(image.rgb.size()) + " bytes, expected " +
                std::to_string(size_t(std::max(image.width, 0)) * size_t(std::max(image.height, 0)) * 3) + " (" +
                std::to_string(image.width) + "x" + std::to_string(image.height) + " RGB)");
  for (size_t i = 0; i < objects.size(); ++i) {
    const BinaryMask* m = objects[i].mask;
    if (!m) continue;
    if (m->width != image.width || m->height != image.height)
      throw Error("annotate_image: mask of object " + std::to_string(i) + " (\"" + objects[i].label + "\") is " +
                  std::to_string(m->width) + "x" + std::to_string(m->height) + ", the image is " +
                  std::to_string(image.width) + "x" + std::to_string(image.height));
    if (m->data.size() != size_t(m->width) * size_t(m->height))
      throw Error("annotate_image: mask of object " + std::to_string(i) + " holds " + std::to_string(m->data.size()) +
                  " values, expected " + std::to_string(size_t(m->width) * size_t(m->height)));
  }

  Image out = image;
  if (out.width == 0 || out.height == 0) return out;
  Canvas canvas{out};
  const int W = out.width, H = out.height;
  const int min_side = std::min(W, H);

  // 1. masks
  float alpha = std::isnan(options.mask_alpha) ? 0.45f : std::clamp(options.mask_alpha, 0.f, 1.f);
  for (size_t i = 0; i < objects.size(); ++i) {
    const BinaryMask* m = objects[i].mask;
    if (!m || alpha <= 0.f) continue;
    const Rgb c = annotation_color(i);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        if (m->data[size_t(y) * size_t(W) + size_t(x)]) canvas.blend(x, y, c, alpha);
  }

  // 2. outlines
  const int lw = options.line_width > 0 ? options.line_width : std::max(2, int(std::lround(min_side / 200.0)));
  for (size_t i = 0; i < objects.size(); ++i) {
    OutlineExtent b{};
    if (!outline_extent(objects[i].box, W, H, b)) continue;
    const Rgb c = annotation_color(i);
    canvas.fill(b.x0, b.y0, b.x1, std::min(b.y1, b.y0 + lw), c);                   // top
    canvas.fill(b.x0, std::max(b.y0, b.y1 - lw), b.x1, b.y1, c);                   // bottom
    canvas.fill(b.x0, b.y0, std::min(b.x1, b.x0 + lw), b.y1, c);                   // left
    canvas.fill(std::max(b.x0, b.x1 - lw), b.y0, b.x1, b.y1, c);                   // right
  }

  // 3. tags
  std::unique_ptr<Font> font;
  float px = options.font_px > 0 ? options.font_px : std::max(12.f, 0.045f * float(min_side));
  px = std::clamp(px, 4.f, 1024.f);
  const int pad = std::max(2, int(std::lround(px * 0.2f)));
  for (size_t i = 0; i < objects.size(); ++i) {
    OutlineExtent b{};
    if (!outline_extent(objects[i].box, W, H, b)) continue;
    const std::string text = tag_text(objects[i]);
    if (text.empty()) continue;
    if (!font) font = std::make_unique<Font>(options.font_path, "annotate_image");
    const std::vector<uint32_t> cps = utf8_codepoints(text);
    const TextLayout t = measure(*font, cps, px);
    const int tag_w = int(std::ceil(t.width)) + 2 * pad;
    const int tag_h = t.height + 2 * pad;
    int top = b.y0 - tag_h;
    if (top < 0) top = std::max(b.y0, 0);
    if (top + tag_h > H) top = std::max(0, H - tag_h);
    int left = std::max(b.x0, 0);
    if (left + tag_w > W) left = std::max(0, W - tag_w);
    const Rgb bg = annotation_color(i);
    const double luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2];
    const Rgb fg = luma > 150 ? Rgb{0, 0, 0} : Rgb{255, 255, 255};
    canvas.fill(left, top, left + tag_w, top + tag_h, bg);
    draw_text(canvas, *font, cps, t, left + pad, top + pad, fg);
  }
  return out;
}

}  // namespace pg
