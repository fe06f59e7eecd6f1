// Training targets: boxes (and mask codes) -> PaliGemma answer text (see structured.h).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "paligemma/error.h"
#include "paligemma/structured.h"

namespace pg {

int coordinate_to_bin(double v, Bins bins) {
  if (std::isnan(v)) v = 0;
  v = std::clamp(v, 0.0, 1.0);
  if (bins == Bins::BigVision) return static_cast<int>(std::lround(v * 1023.0));
  return std::min(1023, static_cast<int>(std::floor(v * 1024.0)));
}

std::string loc_token(int bin) {
  if (bin < 0 || bin > 1023) throw Error("loc bin " + std::to_string(bin) + " is outside 0..1023");
  char buf[16];
  std::snprintf(buf, sizeof buf, "<loc%04d>", bin);
  return buf;
}

std::string seg_token(int code) {
  if (code < 0 || code > 127) throw Error("seg code " + std::to_string(code) + " is outside 0..127");
  char buf[16];
  std::snprintf(buf, sizeof buf, "<seg%03d>", code);
  return buf;
}

namespace {

void check_label(const std::string& label) {
  if (label.find(';') != std::string::npos || label.find("<loc") != std::string::npos ||
      label.find("<seg") != std::string::npos || label.find('\n') != std::string::npos)
    throw Error("label '" + label + "' holds ';', a <loc>/<seg> token or a newline");
}

std::string locs(const LabeledBox& b, int width, int height, Bins bins) {
  if (width <= 0 || height <= 0)
    throw Error("image size " + std::to_string(width) + "x" + std::to_string(height) + " is not positive");
  const Box& x = b.box;
  if (!(x.x1 >= x.x0) || !(x.y1 >= x.y0)) throw Error("box of '" + b.label + "' is inverted or not a number");
  check_label(b.label);
  return loc_token(coordinate_to_bin(x.y0 / height, bins)) + loc_token(coordinate_to_bin(x.x0 / width, bins)) +
         loc_token(coordinate_to_bin(x.y1 / height, bins)) + loc_token(coordinate_to_bin(x.x1 / width, bins));
}

std::string with_label(std::string s, const std::string& label) {
  if (!label.empty()) s += " " + label;
  return s;
}

}  // namespace

std::string detection_target(const std::vector<LabeledBox>& boxes, int image_width, int image_height, Bins bins) {
  std::string out;
  for (size_t i = 0; i < boxes.size(); ++i) {
    if (i) out += " ; ";
    out += with_label(locs(boxes[i], image_width, image_height, bins), boxes[i].label);
  }
  return out;
}

std::string segmentation_target(const LabeledBox& box, const std::array<int, 16>& codes, int image_width,
                                int image_height, Bins bins) {
  std::string s = locs(box, image_width, image_height, bins);
  for (int c : codes) s += seg_token(c);
  return with_label(std::move(s), box.label);
}

}  // namespace pg
