// pg::load_image: read the file, detect the format from its bytes, decode, apply the EXIF
// orientation (transformers.image_utils.load_image = PIL open + exif_transpose + convert("RGB")).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>

#include "image/decode_internal.h"
#include "paligemma/error.h"

namespace pg::image_detail {

void fail(const std::string& name, const std::string& problem) {
  throw Error("image '" + name + "': " + problem);
}

void check_dimensions(int64_t width, int64_t height, const std::string& name, const char* format) {
  if (width <= 0 || height <= 0)
    fail(name, std::string("corrupt ") + format + " file (invalid image size " + std::to_string(width) + "x" +
                   std::to_string(height) + ")");
  if (width > kMaxImagePixels || height > kMaxImagePixels || width * height > kMaxImagePixels)
    fail(name, std::string(format) + " image is too large: " + std::to_string(width) + "x" + std::to_string(height) +
                   " exceeds the limit of " + std::to_string(kMaxImagePixels) +
                   " pixels (Pillow's decompression-bomb limit)");
}

}  // namespace pg::image_detail

namespace pg {

using namespace image_detail;

std::string detect_image_format(const uint8_t* d, size_t n) {
  auto starts = [&](const char* magic, size_t len, size_t at = 0) {
    return n >= at + len && std::memcmp(d + at, magic, len) == 0;
  };
  if (starts("\xFF\xD8\xFF", 3)) return "JPEG";
  if (starts("\x89PNG\r\n\x1A\n", 8)) return "PNG";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "GIF";
  if (starts("BM", 2)) return "BMP";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "WEBP";
  if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' &&
      (d[2] == ' ' || (d[2] >= '\t' && d[2] <= '\r')))
    return "PNM";
  // Recognised, not supported: named in the error message.
  if (starts("II*\0", 4) || starts("MM\0*", 4) || starts("II+\0", 4) || starts("MM\0+", 4)) return "TIFF";
  if (starts("\0\0\0\x0CjP  \r\n\x87\n", 12) || starts("\xFF\x4F\xFF\x51", 4)) return "JPEG 2000";
  if (starts("\xFF\x0A", 2) || starts("\0\0\0\x0CJXL \r\n\x87\n", 12)) return "JPEG XL";
  if (starts("ftyp", 4, 4)) {
    if (starts("avif", 4, 8) || starts("avis", 4, 8)) return "AVIF";
    if (starts("heic", 4, 8) || starts("heix", 4, 8) || starts("mif1", 4, 8) || starts("msf1", 4, 8)) return "HEIF";
    return "ISO media (MP4/HEIF family)";
  }
  if (starts("\0\0\1\0", 4)) return "ICO";
  if (starts("8BPS", 4)) return "PSD";
  if (starts("qoif", 4)) return "QOI";
  if (starts("%PDF", 4)) return "PDF";
  if (starts("DDS ", 4)) return "DDS";
  if (starts("v/1\x01", 4)) return "OpenEXR";
  if (starts("<svg", 4) || starts("<?xml", 5)) return "SVG/XML";
  return "";
}

Image load_image_from_memory(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "file is empty");
  const std::string format = detect_image_format(data, size);
  Decoded d;
  if (format == "JPEG") d = decode_jpeg(data, size, name);
  else if (format == "PNG") d = decode_png(data, size, name);
  else if (format == "GIF") d = decode_gif(data, size, name);
  else if (format == "BMP") d = decode_bmp(data, size, name);
  else if (format == "WEBP") d = decode_webp(data, size, name);
  else if (format == "PNM") d = decode_pnm(data, size, name);
  else if (!format.empty())
    fail(name, "unsupported image format " + format +
                   " (supported: JPEG, PNG, BMP, GIF, PPM/PGM/PBM, WebP)");
  else
    fail(name, "unknown image format (not JPEG, PNG, BMP, GIF, PPM/PGM/PBM or WebP)");

  // PIL.ImageOps.exif_transpose: EXIF Orientation; when EXIF has no such tag, XMP's.
  int orientation = exif_orientation(d.exif);
  if (orientation < 0) orientation = xmp_orientation(d.xmp);
  if (orientation >= 2 && orientation <= 8) return apply_orientation(d.image, orientation);
  return std::move(d.image);
}

Image load_image(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open file: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "cannot open file: it is a directory");
  // Bounded, so that a device or pipe (e.g. /dev/zero) cannot exhaust memory.
  constexpr size_t kMaxFileBytes = size_t{1} << 30;
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxFileBytes)
    fail(path, "file is larger than 1 GiB");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, std::string("cannot open file: ") + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
    bytes.insert(bytes.end(), buf, buf + got);
    if (bytes.size() > kMaxFileBytes) {
      std::fclose(f);
      fail(path, "file is larger than 1 GiB");
    }
  }
  bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) fail(path, "error while reading the file");
  return load_image_from_memory(bytes.data(), bytes.size(), path);
}

}  // namespace pg
