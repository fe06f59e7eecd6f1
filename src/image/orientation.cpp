// EXIF orientation: reading it (libexif for the EXIF block, Pillow's regular expression for the
// XMP fallback) and applying it as PIL.ImageOps.exif_transpose does.
#include <cstring>
#include <string>

#include <libexif/exif-data.h>

#include "image/decode_internal.h"

namespace pg::image_detail {

int exif_orientation(const std::vector<uint8_t>& exif) {
  if (exif.empty()) return -1;
  // libexif wants the "Exif\0\0" header; PNG eXIf and WebP EXIF usually carry bare TIFF data
  // (Pillow accepts both).
  static const uint8_t kHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  std::vector<uint8_t> buf;
  if (exif.size() >= 6 && std::memcmp(exif.data(), kHeader, 6) == 0) {
    buf = exif;
  } else {
    buf.assign(kHeader, kHeader + 6);
    buf.insert(buf.end(), exif.begin(), exif.end());
  }
  if (buf.size() < 6 + 8 || buf.size() > 0xFFFFFFFFu) return -1;
  ExifData* ed = exif_data_new();
  if (!ed) return -1;
  // Load entries as stored: no "fixing" to the specification, keep unknown tags.
  exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_unset_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
  exif_data_load_data(ed, buf.data(), static_cast<unsigned int>(buf.size()));
  int orientation = -1;
  if (ExifContent* ifd0 = ed->ifd[EXIF_IFD_0]) {
    ExifEntry* e = exif_content_get_entry(ifd0, EXIF_TAG_ORIENTATION);
    if (e) orientation = 0;  // present; 0 unless it is a single integer
    if (e && e->data && e->components == 1) {
      ExifByteOrder order = exif_data_get_byte_order(ed);
      switch (e->format) {
        case EXIF_FORMAT_SHORT:
        case EXIF_FORMAT_SSHORT:
          if (e->size >= 2) orientation = exif_get_short(e->data, order);
          break;
        case EXIF_FORMAT_LONG:
        case EXIF_FORMAT_SLONG:
          if (e->size >= 4) orientation = static_cast<int>(exif_get_long(e->data, order));
          break;
        case EXIF_FORMAT_BYTE:
          if (e->size >= 1) orientation = e->data[0];
          break;
        default: break;
      }
    }
  }
  exif_data_unref(ed);
  return orientation;
}

int xmp_orientation(const std::string& xmp) {
  static const std::string kTag = "tiff:Orientation";
  for (size_t at = xmp.find(kTag); at != std::string::npos; at = xmp.find(kTag, at + 1)) {
    size_t p = at + kTag.size();
    if (xmp.compare(p, 2, "=\"") == 0) {
      p += 2;
    } else if (p < xmp.size() && xmp[p] == '>') {
      p += 1;
    } else {
      continue;
    }
    if (p < xmp.size() && xmp[p] >= '0' && xmp[p] <= '9') return xmp[p] - '0';
  }
  return -1;
}

}  // namespace pg::image_detail

namespace pg {

Image apply_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  // Orientations 5-8 swap the axes (TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90).
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(image.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx, sy;  // source pixel for output (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break;               // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;       // ROTATE_180
        case 4: sx = x; sy = h - 1 - y; break;               // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                       // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break;               // ROTATE_270 (90 clockwise)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;       // TRANSVERSE
        default: sx = w - 1 - y; sy = x; break;              // 8: ROTATE_90 (counter-clockwise)
      }
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * out.width + x) * 3],
                  &image.rgb[(static_cast<size_t>(sy) * w + sx) * 3], 3);
    }
  }
  return out;
}

}  // namespace pg
