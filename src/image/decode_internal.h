#pragma once
// Internal to src/image: the per-format decoders behind pg::load_image. Each returns the image
// already converted to 8-bit RGB exactly as Pillow's convert("RGB") would, plus the metadata that
// PIL.ImageOps.exif_transpose looks at. Every failure is a pg::Error naming the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/image.h"

namespace pg::image_detail {

struct Decoded {
  Image image;
  std::vector<uint8_t> exif;  // EXIF block (TIFF data, optionally prefixed "Exif\0\0"); empty: none
  std::string xmp;            // XMP packet; empty: none
};

[[noreturn]] void fail(const std::string& name, const std::string& problem);

// Rejects zero or absurd sizes (more than kMaxImagePixels) before anything is allocated.
void check_dimensions(int64_t width, int64_t height, const std::string& name, const char* format);

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name);
Decoded decode_png(const uint8_t* data, size_t size, const std::string& name);
Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name);
Decoded decode_gif(const uint8_t* data, size_t size, const std::string& name);
Decoded decode_pnm(const uint8_t* data, size_t size, const std::string& name);
Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name);

// zlib (RFC 1950) inflate through stb_image's decoder; false on corrupt data.
bool zlib_inflate(const uint8_t* data, size_t size, std::vector<uint8_t>* out);

// The IFD0 Orientation tag of an EXIF block (via libexif): -1 when there is no such tag (or no
// readable EXIF), 0 when the tag is present but not a single integer.
int exif_orientation(const std::vector<uint8_t>& exif);
// Pillow's XMP fallback: the first match of  tiff:Orientation(="|>)([0-9]) , -1 when none.
int xmp_orientation(const std::string& xmp);

// Big/little-endian readers with no alignment requirements.
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t le32(const uint8_t* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}
inline uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>((p[1] << 8) | p[0]); }
inline uint32_t le24(const uint8_t* p) { return (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0]; }

}  // namespace pg::image_detail
