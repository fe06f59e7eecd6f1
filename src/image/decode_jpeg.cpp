// JPEG through libjpeg-turbo, set up the way Pillow's JpegDecode.c sets it up (default ISLOW IDCT,
// fancy upsampling, no scaling), so decoded pixels are the ones PIL gets.
//
// libjpeg reports errors by calling error_exit, whose default calls exit(): ours longjmps back
// into decode_phase(), which only holds plain C data (no C++ objects with destructors live
// across a libjpeg call). Warnings: Pillow ignores libjpeg warnings, except that running out of
// data before the last scanline makes PIL raise "image file is truncated"; we do the same
// (JWRN_JPEG_EOF before all scanlines are read is an error, any other warning is ignored, and a
// missing EOI after complete scan data is accepted, as in Pillow).
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include <jpeglib.h>
#include <jerror.h>

#include "image/decode_internal.h"

namespace pg::image_detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool hit_eof;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (msg_level < 0) {
    cinfo->err->num_warnings++;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->hit_eof = true;
  }
}

void on_output_message(j_common_ptr) {}

struct Context {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  bool created = false;
  ~Context() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// Phase 1: header. Returns false with ctx->err.message set on error.
bool read_header(Context* ctx, const uint8_t* data, size_t size) {
  if (setjmp(ctx->err.jump)) return false;
  jpeg_create_decompress(&ctx->cinfo);
  ctx->created = true;
  jpeg_mem_src(&ctx->cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&ctx->cinfo, JPEG_APP0 + 1, 0xFFFF);
  int rc = jpeg_read_header(&ctx->cinfo, TRUE);
  if (rc != JPEG_HEADER_OK) {
    std::snprintf(ctx->err.message, sizeof ctx->err.message, "JPEG has no image (tables only)");
    return false;
  }
  return true;
}

// Phase 2: pixels into `out` (height * row_bytes). Returns false with ctx->err.message set.
bool read_pixels(Context* ctx, uint8_t* out, size_t row_bytes) {
  if (setjmp(ctx->err.jump)) return false;
  jpeg_decompress_struct* cinfo = &ctx->cinfo;
  jpeg_start_decompress(cinfo);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out + static_cast<size_t>(cinfo->output_scanline) * row_bytes;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
      std::snprintf(ctx->err.message, sizeof ctx->err.message, "libjpeg returned no scanline");
      return false;
    }
  }
  if (ctx->err.hit_eof) {
    std::snprintf(ctx->err.message, sizeof ctx->err.message,
                  "truncated JPEG data (premature end of file before the last scanline)");
    return false;
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// Pillow's cmyk2rgb (Convert.c) on "CMYK;I" data (libjpeg's CMYK samples inverted).
inline uint8_t muldiv255(int a, int b) {
  int tmp = a * b + 128;
  return static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
}
inline uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  Context ctx;
  std::memset(&ctx.cinfo, 0, sizeof ctx.cinfo);
  std::memset(&ctx.err, 0, sizeof ctx.err);
  ctx.cinfo.err = jpeg_std_error(&ctx.err.pub);
  ctx.err.pub.error_exit = on_error_exit;
  ctx.err.pub.emit_message = on_emit_message;
  ctx.err.pub.output_message = on_output_message;

  const bool header_ok = read_header(&ctx, data, size);
  if (ctx.err.hit_eof) fail(name, "truncated JPEG data (premature end of file in the header)");
  if (!header_ok) fail(name, std::string("corrupt JPEG: ") + ctx.err.message);

  jpeg_decompress_struct& cinfo = ctx.cinfo;
  check_dimensions(cinfo.image_width, cinfo.image_height, name, "JPEG");
  if (cinfo.data_precision != 8)
    fail(name, "cannot handle " + std::to_string(cinfo.data_precision) + "-bit JPEG samples");
  int components = cinfo.num_components;
  switch (components) {
    case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: cinfo.out_color_space = JCS_RGB; break;
    case 4: cinfo.out_color_space = JCS_CMYK; break;
    default: fail(name, "cannot handle " + std::to_string(components) + "-layer JPEG images");
  }

  Decoded result;
  // Metadata as Pillow collects it: every "Exif\0\0" APP1 appended (the first whole, later ones
  // without their 6-byte header), the last XMP APP1 (text after the first NUL).
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    const uint8_t* p = m->data;
    size_t n = m->data_length;
    static const char kExif[6] = {'E', 'x', 'i', 'f', 0, 0};
    static const char kXmp[] = "http://ns.adobe.com/xap/1.0/";
    if (n >= 6 && std::memcmp(p, kExif, 6) == 0) {
      if (result.exif.empty())
        result.exif.assign(p, p + n);
      else
        result.exif.insert(result.exif.end(), p + 6, p + n);
    } else if (n >= sizeof kXmp && std::memcmp(p, kXmp, sizeof kXmp) == 0) {  // includes the NUL
      result.xmp.assign(reinterpret_cast<const char*>(p) + sizeof kXmp, n - sizeof kXmp);
    }
  }

  const size_t w = cinfo.image_width, h = cinfo.image_height;
  const size_t row_bytes = w * static_cast<size_t>(components);
  std::vector<uint8_t> raw(row_bytes * h);
  if (!read_pixels(&ctx, raw.data(), row_bytes)) {
    std::string msg = ctx.err.message;
    if (msg.rfind("truncated", 0) == 0) fail(name, msg);
    fail(name, "corrupt JPEG data: " + msg);
  }

  Image& img = result.image;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  if (components == 3) {
    img.rgb = std::move(raw);
  } else {
    img.rgb.resize(w * h * 3);
    const uint8_t* s = raw.data();
    uint8_t* d = img.rgb.data();
    if (components == 1) {
      for (size_t i = 0; i < w * h; ++i, d += 3) d[0] = d[1] = d[2] = s[i];
    } else {
      for (size_t i = 0; i < w * h; ++i, s += 4, d += 3) {
        int nk = s[3];  // 255 - inverted K
        for (int c = 0; c < 3; ++c) d[c] = clip8(nk - muldiv255(255 - s[c], nk));
      }
    }
  }
  return result;
}

}  // namespace pg::image_detail
