// Resampling, bit-exact with the two references:
//
// PilBicubic: Pillow's libImaging/Resample.c (ImagingResample with the BICUBIC filter, a = -0.5,
//   support 2) on 8-bit data, reimplemented from its documented behaviour:
//   - separable; coefficients per output pixel from the filter scaled by max(1, in/out) when
//     downscaling (antialiasing), window [int(center - support + 0.5), int(center + support + 0.5))
//     clipped to the image, normalised to sum 1 in double;
//   - coefficients to fixed point with 22 fractional bits (round half away from zero); each
//     output is (sum(pixel * coeff) + 2^21) >> 22 clipped to 0..255;
//   - vertical coefficients are computed first, the horizontal pass runs only over the rows the
//     vertical pass needs, then the vertical pass; a pass is skipped when its size is unchanged.
// BigVisionBilinear: TensorFlow's ScaleAndTranslate kernel behind
//   tf.image.resize(method="bilinear", antialias=True) (triangle kernel, radius scaled by
//   max(1, in/out), float32 weights normalised per output, rows gathered first, then columns),
//   then big_vision's tf.cast(tf.clip_by_value(x, 0, 255), uint8), which truncates.
//
// Floating-point contraction (FMA) would change the rounding of both references (Pillow and
// TensorFlow are built without it), so it is disabled for this file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "image/triangle_spans.h"
#include "paligemma/error.h"
#include "paligemma/image.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace pg {
namespace {

// ---------------------------------------------------------------------------------------------
// Pillow bicubic

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct PilCoeffs {
  int ksize = 0;
  std::vector<int> bounds;   // per output: xmin, count
  std::vector<int32_t> kk;   // per output: ksize fixed-point coefficients
};

PilCoeffs pil_coeffs(int in_size, int out_size) {
  const double support_base = 2.0;  // BICUBIC
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_base * filterscale;
  PilCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    for (int x = xmax; x < c.ksize; ++x) k[x] = 0;
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
    for (int x = 0; x < c.ksize; ++x) {
      const double v = k[x] * (1 << kPrecisionBits);
      c.kk[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + v : 0.5 + v);
    }
  }
  return c;
}

inline uint8_t pil_clip8(int v) {
  v >>= kPrecisionBits;  // arithmetic shift (floor), as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row0, row0 + rows) of src (width sw) into dst (width dw, `rows` rows).
void pil_horizontal(const uint8_t* src, int sw, int row0, int rows, uint8_t* dst, int dw, const PilCoeffs& c) {
  for (int yy = 0; yy < rows; ++yy) {
    const uint8_t* in = src + (static_cast<size_t>(yy) + row0) * sw * 3;
    uint8_t* out = dst + static_cast<size_t>(yy) * dw * 3;
    for (int xx = 0; xx < dw; ++xx) {
      const int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
      int ss0 = 1 << (kPrecisionBits - 1), ss1 = ss0, ss2 = ss0;
      for (int x = 0; x < xmax; ++x) {
        const uint8_t* p = in + (static_cast<size_t>(x) + xmin) * 3;
        ss0 += p[0] * k[x];
        ss1 += p[1] * k[x];
        ss2 += p[2] * k[x];
      }
      out[xx * 3] = pil_clip8(ss0);
      out[xx * 3 + 1] = pil_clip8(ss1);
      out[xx * 3 + 2] = pil_clip8(ss2);
    }
  }
}

// Vertical pass: dst row yy from src rows bounds (already relative to src).
void pil_vertical(const uint8_t* src, int w, uint8_t* dst, int dh, const PilCoeffs& c) {
  for (int yy = 0; yy < dh; ++yy) {
    const int ymin = c.bounds[yy * 2], ymax = c.bounds[yy * 2 + 1];
    const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    uint8_t* out = dst + static_cast<size_t>(yy) * w * 3;
    for (int xx = 0; xx < w; ++xx) {
      int ss0 = 1 << (kPrecisionBits - 1), ss1 = ss0, ss2 = ss0;
      for (int y = 0; y < ymax; ++y) {
        const uint8_t* p = src + ((static_cast<size_t>(y) + ymin) * w + xx) * 3;
        ss0 += p[0] * k[y];
        ss1 += p[1] * k[y];
        ss2 += p[2] * k[y];
      }
      out[xx * 3] = pil_clip8(ss0);
      out[xx * 3 + 1] = pil_clip8(ss1);
      out[xx * 3 + 2] = pil_clip8(ss2);
    }
  }
}

Image resize_pil_bicubic(const Image& in, int width, int height) {
  const bool need_horizontal = width != in.width;
  const bool need_vertical = height != in.height;
  if (!need_horizontal && !need_vertical) return in;  // Image.resize returns a copy
  PilCoeffs vert = pil_coeffs(in.height, height);
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[(height - 1) * 2] + vert.bounds[(height - 1) * 2 + 1];

  Image temp;
  const Image* src = &in;
  if (need_horizontal) {
    PilCoeffs horiz = pil_coeffs(in.width, width);
    for (int i = 0; i < height; ++i) vert.bounds[i * 2] -= ybox_first;
    temp.width = width;
    temp.height = ybox_last - ybox_first;
    temp.rgb.resize(static_cast<size_t>(temp.width) * temp.height * 3);
    pil_horizontal(in.rgb.data(), in.width, ybox_first, temp.height, temp.rgb.data(), width, horiz);
    src = &temp;
  }
  if (!need_vertical) return temp;
  Image out;
  out.width = src->width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(out.width) * height * 3);
  pil_vertical(src->rgb.data(), src->width, out.rgb.data(), height, vert);
  return out;
}

// ---------------------------------------------------------------------------------------------
// TensorFlow antialiased bilinear (ScaleAndTranslate, triangle kernel)

Image resize_tf_bilinear(const Image& in, int width, int height) {
  const TriangleSpans<float> rows = triangle_spans<float>(height, in.height);
  const TriangleSpans<float> cols = triangle_spans<float>(width, in.width);
  const int iw = in.width, ih = in.height, ch = 3;
  // GatherRows: intermediate is height x iw.
  std::vector<float> mid(static_cast<size_t>(height) * iw * ch, 0.0f);
  const size_t in_row = static_cast<size_t>(iw) * ch;
  for (int y = 0; y < height; ++y) {
    float* out = mid.data() + in_row * y;
    const int start = rows.starts[y];
    const int real = rows.count(y, ih);
    const float* w = rows.weights_of(y);
    for (int i = 0; i < real; ++i) {
      const uint8_t* src = in.rgb.data() + in_row * (static_cast<size_t>(start) + i);
      const float wi = w[i];
      for (size_t j = 0; j < in_row; ++j) out[j] += wi * static_cast<float>(src[j]);
    }
  }
  // GatherColumns, then clip and truncate to uint8.
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(width) * height * ch);
  for (int y = 0; y < height; ++y) {
    const float* row = mid.data() + in_row * y;
    for (int x = 0; x < width; ++x) {
      const int start = cols.starts[x];
      const int real = cols.count(x, iw);
      const float* w = cols.weights_of(x);
      float acc[3] = {0.0f, 0.0f, 0.0f};
      const float* p = row + static_cast<size_t>(start) * ch;
      for (int i = 0; i < real; ++i, p += ch)
        for (int c = 0; c < ch; ++c) acc[c] += w[i] * p[c];
      for (int c = 0; c < ch; ++c) {
        float v = std::min(std::max(acc[c], 0.0f), 255.0f);
        out.rgb[(static_cast<size_t>(y) * width + x) * ch + c] = static_cast<uint8_t>(v);
      }
    }
  }
  return out;
}

void check_image(const Image& image, const char* what) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw Error(std::string(what) + ": invalid input image (" + std::to_string(image.width) + "x" +
                std::to_string(image.height) + " with " + std::to_string(image.rgb.size()) + " bytes)");
}

}  // namespace

Image resize_image(const Image& image, int width, int height, ResizeFilter filter) {
  check_image(image, "resize_image");
  if (width <= 0 || height <= 0 || static_cast<int64_t>(width) * height > kMaxImagePixels)
    throw Error("resize_image: invalid target size " + std::to_string(width) + "x" + std::to_string(height));
  switch (filter) {
    case ResizeFilter::PilBicubic: return resize_pil_bicubic(image, width, height);
    case ResizeFilter::BigVisionBilinear: return resize_tf_bilinear(image, width, height);
  }
  throw Error("resize_image: unknown filter");
}

std::vector<float> normalize_image(const Image& image, ResizeFilter filter) {
  check_image(image, "normalize_image");
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  std::vector<float> out(plane * 3);
  // Lookup of the 256 possible values, computed with the reference's exact dtypes and order.
  float table[256];
  for (int v = 0; v < 256; ++v) {
    if (filter == ResizeFilter::PilBicubic) {
      // transformers rescale: (image.astype(float64) * (1/255)).astype(float32);
      // normalize: (x - float32(0.5)) / float32(0.5) in float32.
      const float rescaled = static_cast<float>(static_cast<double>(v) * (1.0 / 255.0));
      table[v] = (rescaled - 0.5f) / 0.5f;
    } else {
      table[v] = static_cast<float>(v) / 127.5f - 1.0f;
    }
  }
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) out[c * plane + i] = table[image.rgb[i * 3 + c]];
  return out;
}

std::vector<float> preprocess_image(const Image& image, int size, ResizeFilter filter) {
  check_image(image, "preprocess_image");
  if (size <= 0) throw Error("preprocess_image: invalid size " + std::to_string(size));
  if (filter == ResizeFilter::PilBicubic && image.width == size && image.height == size)
    return normalize_image(image, filter);
  return normalize_image(resize_image(image, size, size, filter), filter);
}

}  // namespace pg
