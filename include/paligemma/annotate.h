#pragma once
// Drawing detection / segmentation results onto an image, for people to look at, and PNG output.
//
// annotate_image draws, for each object in order, with the object's palette colour
// (annotation_color(i), a fixed palette of 10 well-separated colours, cycling):
//   1. its mask (if any), blended: out = round((1 - mask_alpha) * pixel + mask_alpha * colour);
//   2. its box outline, line_width pixels thick, drawn inside the box's pixel extent
//      [floor(x0), ceil(x1)) x [floor(y0), ceil(y1));
//   3. a label tag, "label" or "label 0.93" (confidence with 2 decimals when finite), white or
//      black text (whichever contrasts with the colour) on a filled rectangle of the colour, just
//      above the box's top-left corner; inside the box when there is no room above it, and
//      shifted left / up to stay inside the image. No tag when the text would be empty.
// All masks are drawn first, then all outlines, then all tags, so a tag is never hidden by a
// later object. Boxes partly outside the image are clipped; a box wholly outside (or with a
// NaN coordinate) draws nothing; an inverted box (x1 < x0 or y1 < y0) is drawn as if its
// corners were swapped.
// Errors (pg::Error): an image whose rgb does not hold width * height * 3 bytes; a mask whose
// size differs from the image's or whose data does not hold width * height values; a font file
// that cannot be read or parsed (its path in the message; the font is only loaded when some
// tag is drawn).
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "paligemma/metrics.h"
#include "paligemma/structured.h"

namespace pg {

struct Annotation {
  std::string label;  // UTF-8
  Box box;            // pixels
  double confidence = std::numeric_limits<double>::quiet_NaN();  // shown when finite
  const BinaryMask* mask = nullptr;  // optional, same size as the image, not owned
};

struct AnnotateOptions {
  std::string font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";  // a TrueType font
  float font_px = 0;       // text pixel height; 0: max(12, 0.045 * min(width, height))
  float mask_alpha = 0.45f;  // clamped to [0, 1]
  int line_width = 0;      // box outline thickness; <= 0: max(2, round(min(width, height) / 200))
};

// The palette colour of the i-th object (cycles every 10).
std::array<uint8_t, 3> annotation_color(size_t index);

Image annotate_image(const Image& image, const std::vector<Annotation>& objects, const AnnotateOptions& options = {});

// 8-bit RGB PNG. pg::Error naming the path when it cannot be written (or the image is malformed).
void write_png(const std::string& path, const Image& image);
// 8-bit grayscale PNG: 255 inside (nonzero), 0 outside. pg::Error naming the path on failure.
void write_mask_png(const std::string& path, const BinaryMask& mask);

}  // namespace pg
