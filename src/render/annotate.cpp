// Drawing boxes, masks and label tags (stb_truetype text; the library's one
// STB_TRUETYPE_IMPLEMENTATION).
#include "paligemma/annotate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "paligemma/error.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#define STB_TRUETYPE_IMPLEMENTATION
#define STBTT_STATIC
#include <stb_truetype.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

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

std::vector<uint32_t> utf8_codepoints(const std::string& s) {
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) n = 0, cp = c;
    else if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    bool ok = i + size_t(n) < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((d & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(n) + 1;
  }
  return out;
}

class Font {
 public:
  explicit Font(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("annotate_image: cannot open font file '" + path + "'");
    data_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error("annotate_image: cannot read font file '" + path + "'");
    if (data_.size() < 12) throw Error("annotate_image: font file '" + path + "' is not a TrueType font");
    const int offset = stbtt_GetFontOffsetForIndex(data_.data(), 0);
    if (offset < 0 || !stbtt_InitFont(&info_, data_.data(), offset))
      throw Error("annotate_image: font file '" + path + "' is not a TrueType font");
  }
  const stbtt_fontinfo* info() const { return &info_; }

 private:
  std::vector<unsigned char> data_;
  stbtt_fontinfo info_{};
};

struct TextLayout {
  float scale = 0;
  int ascent = 0;  // pixels above the baseline
  int height = 0;  // ascent + descent, pixels
  float width = 0;
};

TextLayout measure(const Font& font, const std::vector<uint32_t>& cps, float px) {
  TextLayout t;
  t.scale = stbtt_ScaleForPixelHeight(font.info(), px);
  int asc = 0, desc = 0, gap = 0;
  stbtt_GetFontVMetrics(font.info(), &asc, &desc, &gap);
  t.ascent = int(std::ceil(float(asc) * t.scale));
  t.height = t.ascent + int(std::ceil(float(-desc) * t.scale));
  float x = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    int adv = 0, lsb = 0;
    stbtt_GetCodepointHMetrics(font.info(), int(cps[i]), &adv, &lsb);
    x += float(adv) * t.scale;
    if (i + 1 < cps.size()) x += float(stbtt_GetCodepointKernAdvance(font.info(), int(cps[i]), int(cps[i + 1]))) * t.scale;
  }
  t.width = x;
  return t;
}

void draw_text(Canvas& canvas, const Font& font, const std::vector<uint32_t>& cps, const TextLayout& t, int left,
               int top, const Rgb& color) {
  const int baseline = top + t.ascent;
  float x = float(left);
  std::vector<unsigned char> bitmap;
  for (size_t i = 0; i < cps.size(); ++i) {
    const int cp = int(cps[i]);
    const float shift = x - std::floor(x);
    int ix0 = 0, iy0 = 0, ix1 = 0, iy1 = 0;
    stbtt_GetCodepointBitmapBoxSubpixel(font.info(), cp, t.scale, t.scale, shift, 0.f, &ix0, &iy0, &ix1, &iy1);
    const int gw = ix1 - ix0, gh = iy1 - iy0;
    if (gw > 0 && gh > 0) {
      bitmap.assign(size_t(gw) * size_t(gh), 0);
      stbtt_MakeCodepointBitmapSubpixel(font.info(), bitmap.data(), gw, gh, gw, t.scale, t.scale, shift, 0.f, cp);
      const int ox = int(std::floor(x)) + ix0, oy = baseline + iy0;
      for (int gy = 0; gy < gh; ++gy)
        for (int gx = 0; gx < gw; ++gx) {
          const unsigned char a = bitmap[size_t(gy) * size_t(gw) + size_t(gx)];
          if (a) canvas.blend(ox + gx, oy + gy, color, float(a) / 255.f);
        }
    }
    int adv = 0, lsb = 0;
    stbtt_GetCodepointHMetrics(font.info(), cp, &adv, &lsb);
    x += float(adv) * t.scale;
    if (i + 1 < cps.size()) x += float(stbtt_GetCodepointKernAdvance(font.info(), cp, int(cps[i + 1]))) * t.scale;
  }
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
    if (!font) font = std::make_unique<Font>(options.font_path);
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
