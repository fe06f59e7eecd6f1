// PBM/PGM/PPM (P1-P6), decoded the way Pillow's PpmImagePlugin does. This is a small parser of
// our own rather than stb_image's, because stb reads only P5/P6 and returns raw samples, while
// Pillow rescales: maxval 255 (and 65535 for P5) are raw; other maxvals are rescaled with
// round(v / maxval * out_max) (Python's round: ties to even), out_max being 255, or 65535 for a
// PGM with maxval > 255 (Pillow mode I, which convert("RGB") then clips at 255). Plain (ASCII)
// variants and PBM (1 = black) are supported too; truncated pixel data is an error.
#include <cmath>
#include <cstring>
#include <string>

#include "image/decode_internal.h"

namespace pg::image_detail {
namespace {

bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

class HeaderReader {
 public:
  HeaderReader(const uint8_t* data, size_t size, const std::string& name) : d_(data), n_(size), name_(name) {}

  // Pillow's _read_token: skip leading whitespace, '#' comments run to CR/LF, at most 10 chars;
  // the whitespace byte that ends the token is consumed.
  std::string token() {
    std::string t;
    while (t.size() <= 10) {
      if (pos_ >= n_) break;
      uint8_t c = d_[pos_++];
      if (is_space(c)) {
        if (t.empty()) continue;
        break;
      }
      if (c == '#') {
        while (pos_ < n_ && d_[pos_] != '\r' && d_[pos_] != '\n') ++pos_;
        if (pos_ < n_) ++pos_;
        continue;
      }
      t.push_back(static_cast<char>(c));
    }
    if (t.empty()) fail(name_, "truncated PNM header (end of file while reading the header)");
    if (t.size() > 10) fail(name_, "corrupt PNM header (token too long)");
    return t;
  }

  int64_t number(const char* what) {
    std::string t = token();
    int64_t v = 0;
    for (char c : t) {
      if (c < '0' || c > '9') fail(name_, std::string("corrupt PNM header (bad ") + what + " '" + t + "')");
      v = v * 10 + (c - '0');
    }
    return v;
  }

  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }

 private:
  const uint8_t* d_;
  size_t n_;
  const std::string& name_;
  size_t pos_ = 0;
};

uint8_t clip255(int64_t v) { return static_cast<uint8_t>(v > 255 ? 255 : (v < 0 ? 0 : v)); }

}  // namespace

Decoded decode_pnm(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 3 || data[0] != 'P' || data[1] < '1' || data[1] > '6' || !is_space(data[2]))
    fail(name, "not a supported PNM file (only P1-P6 are supported)");
  const int kind = data[1] - '0';
  HeaderReader in(data, size, name);
  in.set_pos(3);
  const int64_t width = in.number("width");
  const int64_t height = in.number("height");
  if (width <= 0 || height <= 0) fail(name, "corrupt PNM header (zero size)");
  check_dimensions(width, height, name, "PNM");
  const bool bitmap = kind == 1 || kind == 4;
  const int bands = (kind == 3 || kind == 6) ? 3 : 1;
  int64_t maxval = 1;
  if (!bitmap) {
    maxval = in.number("maxval");
    if (maxval <= 0 || maxval >= 65536) fail(name, "corrupt PNM header (maxval must be 1..65535)");
  }
  // Pillow: a PGM with maxval > 255 is mode I (values kept up to 65535), clipped by convert("RGB").
  const bool mode_i = bands == 1 && !bitmap && maxval > 255;
  const int64_t out_max = mode_i ? 65535 : 255;
  const size_t n = static_cast<size_t>(width) * static_cast<size_t>(height);
  const size_t samples = n * bands;
  std::vector<uint8_t> values(samples);  // after convert("RGB") clipping, per sample
  auto rescale = [&](int64_t v) -> int64_t {
    double q = static_cast<double>(v) / static_cast<double>(maxval) * static_cast<double>(out_max);
    int64_t r = static_cast<int64_t>(std::nearbyint(q));
    return r > out_max ? out_max : r;
  };

  size_t pos = in.pos();
  if (kind == 4) {
    const size_t row_bytes = (static_cast<size_t>(width) + 7) / 8;
    if (size - pos < row_bytes * height) fail(name, "truncated PBM file (pixel data is incomplete)");
    for (int64_t y = 0; y < height; ++y) {
      const uint8_t* row = data + pos + row_bytes * y;
      for (int64_t x = 0; x < width; ++x)
        values[y * width + x] = ((row[x >> 3] >> (7 - (x & 7))) & 1) ? 0 : 255;
    }
  } else if (kind == 5 || kind == 6) {
    const size_t bytes_per = maxval < 256 ? 1 : 2;
    if ((size - pos) / bytes_per < samples) fail(name, "truncated PNM file (pixel data is incomplete)");
    const uint8_t* p = data + pos;
    for (size_t i = 0; i < samples; ++i) {
      int64_t v = bytes_per == 1 ? p[i] : be16(p + 2 * i);
      if (maxval == 255 || (mode_i && maxval == 65535)) {
        values[i] = clip255(v);
      } else {
        values[i] = clip255(rescale(v));
      }
    }
  } else if (kind == 1) {
    // Plain PBM: every '0'/'1' byte is one pixel, whitespace and comments are ignored.
    size_t i = 0;
    while (i < samples && pos < size) {
      uint8_t c = data[pos++];
      if (c == '#') {
        while (pos < size && data[pos] != '\r' && data[pos] != '\n') ++pos;
        continue;
      }
      if (is_space(c)) continue;
      if (c != '0' && c != '1') fail(name, "corrupt plain PBM data (invalid character)");
      values[i++] = c == '1' ? 0 : 255;
    }
    if (i < samples) fail(name, "truncated PBM file (pixel data is incomplete)");
  } else {  // plain PGM / PPM
    size_t i = 0;
    while (i < samples) {
      while (pos < size && (is_space(data[pos]) || data[pos] == '#')) {
        if (data[pos] == '#') {
          while (pos < size && data[pos] != '\r' && data[pos] != '\n') ++pos;
        } else {
          ++pos;
        }
      }
      if (pos >= size) break;
      size_t start = pos;
      int64_t v = 0;
      while (pos < size && !is_space(data[pos]) && data[pos] != '#') {
        uint8_t c = data[pos];
        if (c < '0' || c > '9') fail(name, "corrupt plain PNM data (invalid token)");
        if (pos - start >= 10) fail(name, "corrupt plain PNM data (token too long)");
        v = v * 10 + (c - '0');
        ++pos;
      }
      if (v > maxval) fail(name, "corrupt plain PNM data (value larger than maxval)");
      values[i++] = clip255(rescale(v));
    }
    if (i < samples) fail(name, "truncated PNM file (pixel data is incomplete)");
  }

  Decoded result;
  Image& img = result.image;
  img.width = static_cast<int>(width);
  img.height = static_cast<int>(height);
  if (bands == 3) {
    img.rgb = std::move(values);
  } else {
    img.rgb.resize(n * 3);
    for (size_t i = 0; i < n; ++i) img.rgb[i * 3] = img.rgb[i * 3 + 1] = img.rgb[i * 3 + 2] = values[i];
  }
  return result;
}

}  // namespace pg::image_detail
