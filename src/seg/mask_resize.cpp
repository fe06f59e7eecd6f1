// Antialiased bilinear resizing of single-channel float masks, and the box <-> 64x64 helpers
// of the mask codec. Weights: image/triangle_spans.h in double; accumulated in double.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "image/triangle_spans.h"
#include "paligemma/error.h"
#include "paligemma/mask_codec.h"

namespace pg {

namespace {

void check_box(const PixelBox& b, const char* fn) {
  if (b.x2 <= b.x1 || b.y2 <= b.y1)
    throw Error(std::string(fn) + ": empty box (y1 " + std::to_string(b.y1) + ", x1 " +
                std::to_string(b.x1) + ", y2 " + std::to_string(b.y2) + ", x2 " +
                std::to_string(b.x2) + ")");
}

void check_image_size(int width, int height, const char* fn) {
  if (width <= 0 || height <= 0)
    throw Error(std::string(fn) + ": image size " + std::to_string(width) + "x" +
                std::to_string(height) + " is not positive");
}

}  // namespace

std::vector<float> resize_bilinear_aa(const float* src, int sw, int sh, int dw, int dh) {
  if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
    throw Error("resize_bilinear_aa: sizes " + std::to_string(sw) + "x" + std::to_string(sh) +
                " -> " + std::to_string(dw) + "x" + std::to_string(dh) + " must be positive");
  const TriangleSpans<double> rows = triangle_spans<double>(dh, sh), cols = triangle_spans<double>(dw, sw);
  // Rows first (TF's GatherRows then GatherColumns).
  std::vector<double> mid(static_cast<size_t>(dh) * sw, 0.0);
  for (int y = 0; y < dh; ++y) {
    double* out = mid.data() + static_cast<size_t>(y) * sw;
    const double* w = rows.weights_of(y);
    for (int i = 0; i < rows.count(y, sh); ++i) {
      const float* in = src + static_cast<size_t>(rows.starts[y] + i) * sw;
      const double wi = w[i];
      for (int x = 0; x < sw; ++x) out[x] += wi * in[x];
    }
  }
  std::vector<float> out(static_cast<size_t>(dw) * dh);
  for (int y = 0; y < dh; ++y) {
    const double* row = mid.data() + static_cast<size_t>(y) * sw;
    for (int x = 0; x < dw; ++x) {
      double acc = 0.0;
      const double* w = cols.weights_of(x);
      for (int i = 0; i < cols.count(x, sw); ++i) acc += w[i] * row[cols.starts[x] + i];
      out[static_cast<size_t>(y) * dw + x] = static_cast<float>(acc);
    }
  }
  return out;
}

std::vector<uint8_t> mask_in_box(const std::vector<float>& logits64, const PixelBox& box, int width,
                                 int height) {
  if (logits64.size() != 64 * 64)
    throw Error("mask_in_box: expected 64x64 = 4096 logits, got " + std::to_string(logits64.size()));
  check_image_size(width, height, "mask_in_box");
  check_box(box, "mask_in_box");
  const int bw = box.x2 - box.x1, bh = box.y2 - box.y1;
  const std::vector<float> r = resize_bilinear_aa(logits64.data(), 64, 64, bw, bh);
  std::vector<uint8_t> mask(static_cast<size_t>(width) * height, 0);
  for (int y = std::max(box.y1, 0); y < std::min(box.y2, height); ++y)
    for (int x = std::max(box.x1, 0); x < std::min(box.x2, width); ++x)
      mask[static_cast<size_t>(y) * width + x] =
          r[static_cast<size_t>(y - box.y1) * bw + (x - box.x1)] > 0.0f ? 1 : 0;
  return mask;
}

std::vector<float> mask_to_64(const uint8_t* mask, int width, int height, const PixelBox& box) {
  check_image_size(width, height, "mask_to_64");
  if (mask == nullptr) throw Error("mask_to_64: no mask data");
  PixelBox c{std::clamp(box.y1, 0, height), std::clamp(box.x1, 0, width), std::clamp(box.y2, 0, height),
             std::clamp(box.x2, 0, width)};
  check_box(c, "mask_to_64 (box clipped to the image)");
  const int cw = c.x2 - c.x1, ch = c.y2 - c.y1;
  std::vector<float> crop(static_cast<size_t>(cw) * ch);
  for (int y = 0; y < ch; ++y)
    for (int x = 0; x < cw; ++x)
      crop[static_cast<size_t>(y) * cw + x] = mask[static_cast<size_t>(y + c.y1) * width + (x + c.x1)];
  std::vector<float> out = resize_bilinear_aa(crop.data(), cw, ch, 64, 64);
  for (float& v : out) v = static_cast<float>(static_cast<double>(v) / 255.0);
  return out;
}

}  // namespace pg
