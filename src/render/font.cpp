// TrueType text with stb_truetype (the library's one STB_TRUETYPE_IMPLEMENTATION).
#include "render/font.h"

#include <cmath>
#include <fstream>
#include <iterator>

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

namespace pg::render {

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

struct Font::Impl {
  std::vector<unsigned char> data;
  stbtt_fontinfo info{};
};

Font::Font(const std::string& path, const std::string& who) : impl_(std::make_unique<Impl>()) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(who + ": cannot open font file '" + path + "'");
  impl_->data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(who + ": cannot read font file '" + path + "'");
  if (impl_->data.size() < 12) throw Error(who + ": font file '" + path + "' is not a TrueType font");
  const int offset = stbtt_GetFontOffsetForIndex(impl_->data.data(), 0);
  if (offset < 0 || !stbtt_InitFont(&impl_->info, impl_->data.data(), offset))
    throw Error(who + ": font file '" + path + "' is not a TrueType font");
}

Font::~Font() = default;

TextLayout Font::measure(const std::vector<uint32_t>& cps, float px) const {
  const stbtt_fontinfo* info = &impl_->info;
  TextLayout t;
  t.scale = stbtt_ScaleForPixelHeight(info, px);
  int asc = 0, desc = 0, gap = 0;
  stbtt_GetFontVMetrics(info, &asc, &desc, &gap);
  t.ascent = int(std::ceil(float(asc) * t.scale));
  t.height = t.ascent + int(std::ceil(float(-desc) * t.scale));
  float x = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    int adv = 0, lsb = 0;
    stbtt_GetCodepointHMetrics(info, int(cps[i]), &adv, &lsb);
    x += float(adv) * t.scale;
    if (i + 1 < cps.size()) x += float(stbtt_GetCodepointKernAdvance(info, int(cps[i]), int(cps[i + 1]))) * t.scale;
  }
  t.width = x;
  return t;
}

void Font::draw(const std::vector<uint32_t>& cps, const TextLayout& t, int left, int top,
                const std::function<void(int, int, unsigned char)>& plot) const {
  const stbtt_fontinfo* info = &impl_->info;
  const int baseline = top + t.ascent;
  float x = float(left);
  std::vector<unsigned char> bitmap;
  for (size_t i = 0; i < cps.size(); ++i) {
    const int cp = int(cps[i]);
    const float shift = x - std::floor(x);
    int ix0 = 0, iy0 = 0, ix1 = 0, iy1 = 0;
    stbtt_GetCodepointBitmapBoxSubpixel(info, cp, t.scale, t.scale, shift, 0.f, &ix0, &iy0, &ix1, &iy1);
    const int gw = ix1 - ix0, gh = iy1 - iy0;
    if (gw > 0 && gh > 0) {
      bitmap.assign(size_t(gw) * size_t(gh), 0);
      stbtt_MakeCodepointBitmapSubpixel(info, bitmap.data(), gw, gh, gw, t.scale, t.scale, shift, 0.f, cp);
      const int ox = int(std::floor(x)) + ix0, oy = baseline + iy0;
      for (int gy = 0; gy < gh; ++gy)
        for (int gx = 0; gx < gw; ++gx) {
          const unsigned char a = bitmap[size_t(gy) * size_t(gw) + size_t(gx)];
          if (a) plot(ox + gx, oy + gy, a);
        }
    }
    int adv = 0, lsb = 0;
    stbtt_GetCodepointHMetrics(info, cp, &adv, &lsb);
    x += float(adv) * t.scale;
    if (i + 1 < cps.size()) x += float(stbtt_GetCodepointKernAdvance(info, cp, int(cps[i + 1]))) * t.scale;
  }
}

}  // namespace pg::render
