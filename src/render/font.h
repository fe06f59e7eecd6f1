#pragma once
// The library's one TrueType loader (stb_truetype): used by the annotator's label tags and by
// the synthetic world's text. Internal header (src/), not part of the public API.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pg::render {

// UTF-8 -> code points; malformed sequences become U+FFFD (one per bad byte).
std::vector<uint32_t> utf8_codepoints(const std::string& s);

struct TextLayout {
  float scale = 0;
  int ascent = 0;  // pixels above the baseline
  int height = 0;  // ascent + descent, pixels
  float width = 0;
};

class Font {
 public:
  // Reads and parses a TrueType file. pg::Error "<who>: cannot open font file 'PATH'" (or
  // "cannot read" / "is not a TrueType font") on failure.
  Font(const std::string& path, const std::string& who);
  ~Font();
  Font(const Font&) = delete;
  Font& operator=(const Font&) = delete;

  // The layout of a line of text at `px` pixels height.
  TextLayout measure(const std::vector<uint32_t>& cps, float px) const;
  // Rasterises the line with its top-left at (left, top): plot(x, y, coverage) for every pixel
  // a glyph covers (coverage 1..255; unclipped coordinates, glyph by glyph in order).
  void draw(const std::vector<uint32_t>& cps, const TextLayout& layout, int left, int top,
            const std::function<void(int, int, unsigned char)>& plot) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pg::render
