// PNG, BMP and GIF through stb_image, with the container-level checks and fix-ups that make the
// result what Pillow 13 + convert("RGB") gives:
//  PNG: chunk walk first (CRC of every chunk before the first IDAT, as Pillow checks; truncation;
//       eXIf / XMP / "Raw profile type exif" metadata). 16-bit grayscale is Pillow mode I;16,
//       whose conversion to RGB clips at 255 (stb gives the high byte), so it is read at 16 bits
//       and clipped here; every other 16-bit PNG keeps the high byte, which is what stb does.
//       A PNG whose image data is complete but that lacks IEND loads (Pillow accepts it).
//  BMP: header checks (truncation, RLE is not supported). 16 bits per pixel is unpacked here:
//       Pillow expands a 5/6-bit channel v to v*255/max (floored); stb replicates bits.
//  GIF: first frame. Pillow keeps palette indices, so a transparent pixel shows the palette
//       colour of the transparent index and pixels outside the first frame's rectangle get the
//       transparent index (or index 0); stb leaves those black/background, so they are repainted
//       from the palette parsed here. Indices past the end of the colour table are black (both).
//  PNG palette indices past the end of PLTE are black, as in Pillow.
#include <cstring>
#include <string>

#include "image/decode_internal.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
// stb's asserts check internal invariants only; never abort the process, even in debug builds.
#define STBI_ASSERT(x) ((void)0)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace pg::image_detail {
namespace {

struct StbPixels {
  stbi_uc* p = nullptr;
  ~StbPixels() {
    if (p) stbi_image_free(p);
  }
};

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

uint32_t crc32_of(const uint8_t* data, size_t size, uint32_t crc = 0) {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

int checked_int(size_t n) { return n > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int>(n); }

// Pillow's getexif for "Raw profile type exif" text: drop the first 3 lines, hex-decode the rest.
std::vector<uint8_t> raw_profile_to_bytes(const std::string& text) {
  size_t pos = 0;
  for (int i = 0; i < 3 && pos != std::string::npos; ++i) {
    pos = text.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  std::vector<uint8_t> out;
  if (pos == std::string::npos) return out;
  int hi = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    char c = text[i];
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    else return {};  // bytes.fromhex would raise: treat as no EXIF
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

}  // namespace

bool zlib_inflate(const uint8_t* data, size_t size, std::vector<uint8_t>* out) {
  int len = 0;
  char* p = stbi_zlib_decode_malloc(reinterpret_cast<const char*>(data), checked_int(size), &len);
  if (!p) return false;
  out->assign(reinterpret_cast<uint8_t*>(p), reinterpret_cast<uint8_t*>(p) + len);
  STBI_FREE(p);
  return true;
}

// ------------------------------------------------------------------------------------------------
// PNG

Decoded decode_png(const uint8_t* data, size_t size, const std::string& name) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size < 8 || std::memcmp(data, kSig, 8) != 0) fail(name, "not a PNG file");
  Decoded result;
  int width = 0, height = 0, bit_depth = 0, color_type = 0;
  bool seen_ihdr = false, seen_idat = false, seen_iend = false;
  size_t complete_end = 8;  // end of the last complete chunk
  size_t plte_pos = 0, plte_len = 0;
  std::string raw_profile;
  bool have_exif_chunk = false;
  bool truncated = false;
  size_t pos = 8;
  while (pos < size) {
    // A truncated chunk after some image data is left to the image decoder (Pillow stops reading
    // once it has every scanline); before any image data it is an error.
    if (size - pos < 12) {
      if (!seen_idat) fail(name, "truncated PNG file (in a chunk header)");
      truncated = true;
      break;
    }
    uint32_t length = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    const uint8_t* body = data + pos + 8;
    if (length > 0x7FFFFFFF) fail(name, "corrupt PNG file (chunk length out of range)");
    if (size - pos - 12 < length) {
      if (!seen_idat)
        fail(name, "truncated PNG file (in chunk '" + std::string(reinterpret_cast<const char*>(type), 4) + "')");
      truncated = true;
      break;
    }
    std::string kind(reinterpret_cast<const char*>(type), 4);
    if (!seen_ihdr && kind != "IHDR") fail(name, "corrupt PNG file (first chunk is not IHDR)");
    if (!seen_idat && kind != "IDAT") {
      uint32_t crc = crc32_of(body, length, crc32_of(type, 4));
      if (crc != be32(body + length)) fail(name, "corrupt PNG file (bad CRC in chunk '" + kind + "')");
    }
    if (kind == "IHDR") {
      if (length < 13) fail(name, "corrupt PNG file (short IHDR)");
      uint32_t w = be32(body), h = be32(body + 4);
      check_dimensions(w, h, name, "PNG");
      width = static_cast<int>(w);
      height = static_cast<int>(h);
      bit_depth = body[8];
      color_type = body[9];
      seen_ihdr = true;
    } else if (kind == "IDAT") {
      seen_idat = true;
    } else if (kind == "PLTE" && !seen_idat) {
      plte_pos = pos;
      plte_len = length;
    } else if (kind == "IEND") {
      seen_iend = true;
      complete_end = pos + 12 + length;
      break;
    } else {
      if (kind == "eXIf") {
        result.exif.assign({'E', 'x', 'i', 'f', 0, 0});
        result.exif.insert(result.exif.end(), body, body + length);
        have_exif_chunk = true;
      } else if (kind == "tEXt" || kind == "zTXt" || kind == "iTXt") {
        const uint8_t* end = body + length;
        const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(body, 0, length));
        if (nul) {
          std::string key(reinterpret_cast<const char*>(body), nul - body);
          std::string value;
          bool ok = true;
          if (kind == "tEXt") {
            value.assign(reinterpret_cast<const char*>(nul + 1), end - nul - 1);
          } else if (kind == "zTXt") {
            std::vector<uint8_t> text;
            ok = end - nul >= 2 && nul[1] == 0 && zlib_inflate(nul + 2, end - nul - 2, &text);
            if (ok) value.assign(text.begin(), text.end());
          } else {  // iTXt: key\0 flag method lang\0 translated\0 text
            const uint8_t* p = nul + 1;
            if (end - p < 2) {
              ok = false;
            } else {
              int compressed = p[0];
              p += 2;
              const uint8_t* lang_end = static_cast<const uint8_t*>(std::memchr(p, 0, end - p));
              const uint8_t* tk_end =
                  lang_end ? static_cast<const uint8_t*>(std::memchr(lang_end + 1, 0, end - lang_end - 1)) : nullptr;
              if (!tk_end) {
                ok = false;
              } else if (compressed) {
                std::vector<uint8_t> text;
                ok = zlib_inflate(tk_end + 1, end - tk_end - 1, &text);
                if (ok) value.assign(text.begin(), text.end());
              } else {
                value.assign(reinterpret_cast<const char*>(tk_end + 1), end - tk_end - 1);
              }
            }
          }
          if (ok) {
            if (key == "XML:com.adobe.xmp" && kind == "iTXt") result.xmp = value;
            if (key == "Raw profile type exif") raw_profile = value;
          }
        }
      }
    }
    pos += 12 + static_cast<size_t>(length);
    complete_end = pos;
  }
  if (!seen_ihdr) fail(name, "corrupt PNG file (no IHDR chunk)");
  if (!seen_idat) fail(name, truncated ? "truncated PNG file (before the image data)" : "PNG file has no image data");
  if (!have_exif_chunk && !raw_profile.empty()) result.exif = raw_profile_to_bytes(raw_profile);

  // Two things stb does differently, fixed on a copy of the file: stb needs IEND (Pillow does not),
  // and stb maps palette indices past the end of PLTE to uninitialised memory where Pillow gives
  // black: pad PLTE to 256 entries of (0, 0, 0).
  std::vector<uint8_t> patched;
  const uint8_t* src = data;
  size_t src_size = size;
  const bool pad_palette = color_type == 3 && plte_len > 0 && plte_len % 3 == 0 && plte_len < 768;
  if (!seen_iend || pad_palette) {
    const size_t end = seen_iend ? size : complete_end;
    if (pad_palette) {
      patched.assign(data, data + plte_pos);
      std::vector<uint8_t> chunk(12 + 768, 0);
      chunk[0] = 0; chunk[1] = 0; chunk[2] = 0x03; chunk[3] = 0x00;  // length 768
      std::memcpy(&chunk[4], "PLTE", 4);
      std::memcpy(&chunk[8], data + plte_pos + 8, plte_len);
      uint32_t crc = crc32_of(&chunk[4], 4 + 768);
      for (int i = 0; i < 4; ++i) chunk[8 + 768 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
      patched.insert(patched.end(), chunk.begin(), chunk.end());
      patched.insert(patched.end(), data + plte_pos + 12 + plte_len, data + end);
    } else {
      patched.assign(data, data + end);
    }
    if (!seen_iend) {
      static const uint8_t kIend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
      patched.insert(patched.end(), kIend, kIend + 12);
    }
    src = patched.data();
    src_size = patched.size();
  }

  Image& img = result.image;
  img.width = width;
  img.height = height;
  const size_t n = static_cast<size_t>(width) * height;
  int w = 0, h = 0, comp = 0;
  if (bit_depth == 16 && color_type == 0) {
    stbi_us* p16 = stbi_load_16_from_memory(src, checked_int(src_size), &w, &h, &comp, 1);
    if (!p16) fail(name, (truncated ? "truncated PNG file (image data incomplete: " : "corrupt PNG data (") + stb_reason() + ")");
    StbPixels guard{reinterpret_cast<stbi_uc*>(p16)};
    if (w != width || h != height) fail(name, "corrupt PNG data (size mismatch)");
    img.rgb.resize(n * 3);
    for (size_t i = 0; i < n; ++i) {
      uint8_t v = static_cast<uint8_t>(p16[i] > 255 ? 255 : p16[i]);
      img.rgb[i * 3] = img.rgb[i * 3 + 1] = img.rgb[i * 3 + 2] = v;
    }
  } else {
    StbPixels px{stbi_load_from_memory(src, checked_int(src_size), &w, &h, &comp, 3)};
    if (!px.p) fail(name, (truncated ? "truncated PNG file (image data incomplete: " : "corrupt PNG data (") + stb_reason() + ")");
    if (w != width || h != height) fail(name, "corrupt PNG data (size mismatch)");
    img.rgb.assign(px.p, px.p + n * 3);
  }
  return result;
}

// ------------------------------------------------------------------------------------------------
// BMP

Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 18 || data[0] != 'B' || data[1] != 'M') fail(name, "not a BMP file");
  const uint32_t offset = le32(data + 10);
  const uint32_t header_size = le32(data + 14);
  if (size < 14 + static_cast<size_t>(header_size) || header_size < 12)
    fail(name, "truncated BMP file (in the header)");
  int64_t width, height;
  int bpp;
  uint32_t compression = 0;
  if (header_size == 12) {
    width = le16(data + 18);
    height = static_cast<int16_t>(le16(data + 20));
    bpp = le16(data + 24);
  } else {
    if (header_size < 40) fail(name, "unsupported BMP header size " + std::to_string(header_size));
    width = static_cast<int32_t>(le32(data + 18));
    height = static_cast<int32_t>(le32(data + 22));
    bpp = le16(data + 28);
    compression = le32(data + 30);
  }
  const bool top_down = height < 0;
  if (top_down) height = -height;
  if (width <= 0 || height <= 0) fail(name, "corrupt BMP file (invalid size)");
  check_dimensions(width, height, name, "BMP");
  if (compression == 1 || compression == 2) fail(name, "RLE-compressed BMP files are not supported");
  if (compression != 0 && compression != 3 && compression != 6)
    fail(name, "unsupported BMP compression " + std::to_string(compression));
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
    fail(name, "unsupported BMP bit depth " + std::to_string(bpp));
  const size_t stride = (static_cast<size_t>(width) * bpp + 31) / 32 * 4;
  if (offset > size || size - offset < stride * static_cast<size_t>(height))
    fail(name, "truncated BMP file (pixel data is shorter than the header says)");

  Decoded result;
  Image& img = result.image;
  img.width = static_cast<int>(width);
  img.height = static_cast<int>(height);
  const size_t n = static_cast<size_t>(width) * height;
  if (bpp == 16) {
    uint32_t masks[3] = {0x7C00, 0x03E0, 0x001F};
    if (compression == 3 || compression == 6) {
      const size_t at = 14 + 40;  // right after a v3 header, or inside a v4/v5 header
      if (size < at + 12) fail(name, "truncated BMP file (in the bit masks)");
      for (int c = 0; c < 3; ++c) masks[c] = le32(data + at + 4 * c);
    }
    bool m565 = masks[0] == 0xF800 && masks[1] == 0x07E0 && masks[2] == 0x001F;
    bool m555 = masks[0] == 0x7C00 && masks[1] == 0x03E0 && masks[2] == 0x001F;
    if (!m565 && !m555) fail(name, "unsupported BMP bitfields layout");
    const int shifts[3] = {m565 ? 11 : 10, 5, 0};
    const int maxv[3] = {31, m565 ? 63 : 31, 31};
    img.rgb.resize(n * 3);
    for (int64_t y = 0; y < height; ++y) {
      const uint8_t* row = data + offset + stride * static_cast<size_t>(top_down ? y : height - 1 - y);
      uint8_t* out = img.rgb.data() + static_cast<size_t>(y) * width * 3;
      for (int64_t x = 0; x < width; ++x) {
        uint32_t v = le16(row + 2 * x);
        for (int c = 0; c < 3; ++c) out[x * 3 + c] = static_cast<uint8_t>(((v >> shifts[c]) & maxv[c]) * 255 / maxv[c]);
      }
    }
    return result;
  }
  int w = 0, h = 0, comp = 0;
  StbPixels px{stbi_load_from_memory(data, checked_int(size), &w, &h, &comp, 3)};
  if (!px.p) fail(name, "corrupt BMP file: " + stb_reason());
  if (w != width || h != height) fail(name, "corrupt BMP file (size mismatch)");
  img.rgb.assign(px.p, px.p + n * 3);
  return result;
}

// ------------------------------------------------------------------------------------------------
// GIF

Decoded decode_gif(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 13 || std::memcmp(data, "GIF8", 4) != 0) fail(name, "not a GIF file");
  const int canvas_w = le16(data + 6), canvas_h = le16(data + 8);
  const uint8_t flags = data[10];
  check_dimensions(canvas_w, canvas_h, name, "GIF");
  size_t pos = 13;
  const uint8_t* global_palette = nullptr;
  int global_entries = 0;
  if (flags & 0x80) {
    global_entries = 2 << (flags & 7);
    if (size - pos < static_cast<size_t>(global_entries) * 3) fail(name, "truncated GIF file (in the colour table)");
    global_palette = data + pos;
    pos += global_entries * 3;
  }
  int transparent = -1;
  auto skip_sub_blocks = [&](const char* where) {
    for (;;) {
      if (pos >= size) fail(name, std::string("truncated GIF file (in ") + where + ")");
      uint8_t n = data[pos++];
      if (n == 0) return;
      if (size - pos < n) fail(name, std::string("truncated GIF file (in ") + where + ")");
      pos += n;
    }
  };
  int fx = 0, fy = 0, fw = 0, fh = 0;
  const uint8_t* palette = nullptr;
  int entries = 0;
  for (;;) {
    if (pos >= size) fail(name, "truncated GIF file (no image)");
    uint8_t b = data[pos++];
    if (b == 0x21) {
      if (pos >= size) fail(name, "truncated GIF file (in an extension)");
      uint8_t label = data[pos++];
      if (label == 0xF9 && pos < size && data[pos] >= 4 && size - pos >= 5) {
        uint8_t gce_flags = data[pos + 1];
        transparent = (gce_flags & 1) ? data[pos + 4] : -1;
      }
      skip_sub_blocks("an extension");
    } else if (b == 0x2C) {
      if (size - pos < 9) fail(name, "truncated GIF file (in the image descriptor)");
      fx = le16(data + pos);
      fy = le16(data + pos + 2);
      fw = le16(data + pos + 4);
      fh = le16(data + pos + 6);
      uint8_t iflags = data[pos + 8];
      pos += 9;
      if (iflags & 0x80) {
        entries = 2 << (iflags & 7);
        if (size - pos < static_cast<size_t>(entries) * 3) fail(name, "truncated GIF file (in the local colour table)");
        palette = data + pos;
        pos += entries * 3;
      } else {
        palette = global_palette;
        entries = global_entries;
      }
      if (pos >= size) fail(name, "truncated GIF file (in the image data)");
      ++pos;  // LZW minimum code size
      skip_sub_blocks("the image data");
      break;
    } else if (b == 0x3B) {
      fail(name, "GIF file has no image");
    } else {
      fail(name, "corrupt GIF file (unknown block type)");
    }
  }
  if (!palette) fail(name, "GIF files without a colour table are not supported");
  if (fw == 0 || fh == 0) fail(name, "corrupt GIF file (empty first frame)");
  if (fx + fw > canvas_w || fy + fh > canvas_h)
    fail(name, "GIF files whose first frame extends past the canvas are not supported");

  int w = 0, h = 0, comp = 0;
  StbPixels px{stbi_load_from_memory(data, checked_int(size), &w, &h, &comp, 4)};
  if (!px.p) fail(name, "corrupt GIF data: " + stb_reason());
  if (w != canvas_w || h != canvas_h) fail(name, "corrupt GIF data (size mismatch)");

  Decoded result;
  Image& img = result.image;
  img.width = w;
  img.height = h;
  const size_t n = static_cast<size_t>(w) * h;
  img.rgb.resize(n * 3);
  // What Pillow shows where stb drew nothing opaque: the fill index (transparent index, else 0).
  const int fill = transparent >= 0 ? transparent : 0;
  uint8_t fill_rgb[3] = {0, 0, 0};
  if (fill < entries) std::memcpy(fill_rgb, palette + 3 * fill, 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      size_t i = static_cast<size_t>(y) * w + x;
      const uint8_t* s = px.p + i * 4;
      uint8_t* d = img.rgb.data() + i * 3;
      bool inside = x >= fx && x < fx + fw && y >= fy && y < fy + fh;
      if (inside && s[3] != 0) {
        d[0] = s[0];
        d[1] = s[1];
        d[2] = s[2];
      } else if (inside && transparent < 0) {
        // Not drawn by stb although there is no transparent index: an index past the end of the
        // colour table, which Pillow shows black.
        d[0] = d[1] = d[2] = 0;
      } else {
        d[0] = fill_rgb[0];
        d[1] = fill_rgb[1];
        d[2] = fill_rgb[2];
      }
    }
  }
  return result;
}

}  // namespace pg::image_detail
