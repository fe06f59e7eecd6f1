// WebP through libwebp. Pillow decodes every WebP with WebPAnimDecoder (default options:
// non-premultiplied RGBA, no threads): for a still image that is a plain RGBA decode; for an
// animation the first frame is decoded into a canvas cleared to transparent black. Alpha is then
// dropped by convert("RGB"). The RIFF chunks are walked here (for EXIF / XMP metadata, the first
// ANMF frame, and truncation: Pillow's demuxer needs the whole file the RIFF header announces).
#include <cstring>
#include <string>

#include <webp/decode.h>

#include "image/decode_internal.h"

namespace pg::image_detail {
namespace {

std::string status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    default: return "error " + std::to_string(static_cast<int>(s));
  }
}

// Decodes a (still) WebP bitstream into an RGBA buffer with the given stride.
void decode_rgba_into(const uint8_t* data, size_t size, uint8_t* out, int stride, size_t out_size,
                      const std::string& name) {
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) fail(name, "libwebp version mismatch");
  config.output.colorspace = MODE_RGBA;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = out;
  config.output.u.RGBA.stride = stride;
  config.output.u.RGBA.size = out_size;
  VP8StatusCode status = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail(name, "truncated WebP file (image data is incomplete)");
  if (status != VP8_STATUS_OK) fail(name, "corrupt WebP data (" + status_text(status) + ")");
}

}  // namespace

Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 12 || std::memcmp(data, "RIFF", 4) != 0 || std::memcmp(data + 8, "WEBP", 4) != 0)
    fail(name, "not a WebP file");
  const uint64_t riff_end = uint64_t{le32(data + 4)} + 8;
  if (riff_end > size) fail(name, "truncated WebP file (shorter than its RIFF header says)");
  const size_t end = static_cast<size_t>(riff_end);

  Decoded result;
  bool have_exif = false, have_xmp = false;
  const uint8_t* first_frame = nullptr;
  size_t first_frame_size = 0;
  for (size_t pos = 12; pos + 8 <= end;) {
    const uint8_t* fourcc = data + pos;
    const size_t len = le32(data + pos + 4);
    const uint8_t* body = data + pos + 8;
    if (len > end - pos - 8) fail(name, "corrupt WebP file (chunk extends past the end)");
    if (!have_exif && std::memcmp(fourcc, "EXIF", 4) == 0) {
      result.exif.assign(body, body + len);
      have_exif = true;
    } else if (!have_xmp && std::memcmp(fourcc, "XMP ", 4) == 0) {
      result.xmp.assign(reinterpret_cast<const char*>(body), len);
      have_xmp = true;
    } else if (!first_frame && std::memcmp(fourcc, "ANMF", 4) == 0) {
      first_frame = body;
      first_frame_size = len;
    }
    pos += 8 + len + (len & 1);
  }

  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(data, size, &features);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail(name, "truncated WebP file (in the header)");
  if (status != VP8_STATUS_OK) fail(name, "corrupt WebP file (" + status_text(status) + ")");
  check_dimensions(features.width, features.height, name, "WebP");
  const int w = features.width, h = features.height;
  const size_t n = static_cast<size_t>(w) * h;
  std::vector<uint8_t> rgba(n * 4, 0);

  if (features.has_animation) {
    if (!first_frame || first_frame_size < 16) fail(name, "corrupt animated WebP file (no ANMF frame)");
    const int fx = 2 * static_cast<int>(le24(first_frame));
    const int fy = 2 * static_cast<int>(le24(first_frame + 3));
    const int fw = 1 + static_cast<int>(le24(first_frame + 6));
    const int fh = 1 + static_cast<int>(le24(first_frame + 9));
    if (fx + fw > w || fy + fh > h) fail(name, "corrupt animated WebP file (frame outside the canvas)");
    const size_t offset = (static_cast<size_t>(fy) * w + fx) * 4;
    decode_rgba_into(first_frame + 16, first_frame_size - 16, rgba.data() + offset, w * 4,
                     rgba.size() - offset, name);
  } else {
    decode_rgba_into(data, end, rgba.data(), w * 4, rgba.size(), name);
  }

  Image& img = result.image;
  img.width = w;
  img.height = h;
  img.rgb.resize(n * 3);
  for (size_t i = 0; i < n; ++i) std::memcpy(&img.rgb[i * 3], &rgba[i * 4], 3);
  return result;
}

}  // namespace pg::image_detail
