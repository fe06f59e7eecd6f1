#pragma once
// Image input: decoding (JPEG, PNG, BMP, GIF, PPM/PGM/PBM, WebP), EXIF orientation, resizing and
// the model's pixel preprocessing, all matching what Hugging Face transformers does with Pillow
// so that pixel_values are bit-identical to transformers' for the same file.
//
// Decoding follows transformers.image_utils.load_image: PIL.Image.open, then
// PIL.ImageOps.exif_transpose, then convert("RGB"), with Pillow 13's conventions:
//  * alpha is dropped, never composited (RGBA, LA, palette tRNS, GIF transparency, WebP alpha);
//  * palette images map through their palette (a transparent index keeps its palette colour);
//  * 16-bit PNG RGB / RGBA / gray+alpha keep the high byte of each sample; 16-bit grayscale PNG
//    (Pillow mode I;16) and 16-bit PGM are clipped to 0..255 (values >= 255 become 255), not
//    scaled; PGM/PPM with other maxvals are rescaled like Pillow's PPM decoder;
//  * CMYK JPEG is read with Adobe (inverted) polarity and converted with Pillow's cmyk2rgb;
//  * EXIF orientation 2-8 is applied from JPEG APP1, PNG eXIf / "Raw profile type exif" and
//    WebP EXIF; when EXIF has no orientation, an XMP tiff:Orientation is used (as Pillow does);
//  * GIF and animated WebP give their first frame; BMP RLE and APNG animation are not handled
//    (BMP RLE is an error; an APNG gives its default image).
// Errors (missing/empty/truncated/corrupt file, unsupported format, absurd dimensions) are
// pg::Error whose message names the file and the problem. Truncation is handled like Pillow
// (which raises "image file is truncated"): a JPEG that ends before its last scanline is an error
// (libjpeg's "premature end of data" warning is promoted to an error; its other corrupt-data
// warnings are ignored, as Pillow ignores them; a missing EOI after complete scan data is fine),
// and so is a PNG/GIF/BMP/PNM/WebP whose pixel data is incomplete.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pg {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // 8-bit RGB, interleaved, row-major: rgb[(y * width + x) * 3 + c]
};

// The largest image accepted, in pixels: Pillow's DecompressionBombError threshold
// (2 * Image.MAX_IMAGE_PIXELS). Checked from the header, before any pixel memory is allocated.
inline constexpr int64_t kMaxImagePixels = 2 * int64_t{89478485};

// transformers.image_utils.load_image semantics: decode, apply EXIF orientation
// (PIL.ImageOps.exif_transpose), convert("RGB"). The format is detected from the bytes.
Image load_image(const std::string& path);
Image load_image_from_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// The container format detected from the first bytes ("JPEG", "PNG", "BMP", "GIF", "PNM", "WEBP"),
// or a name for a recognised but unsupported format ("TIFF", ...), or "" when unknown.
std::string detect_image_format(const uint8_t* data, size_t size);

enum class ResizeFilter {
  PilBicubic,         // PIL Image.resize((w, h), Image.BICUBIC) on uint8, bit-exact
  BigVisionBilinear,  // tf.image.resize(bilinear, antialias=True), clip, cast (truncate) to uint8
};
// Resizes to exactly width x height (no aspect preservation, no crop).
Image resize_image(const Image& image, int width, int height, ResizeFilter filter);

// Model input, CHW float32 (3 x size x size).
//  PilBicubic: bicubic resize to size x size, then transformers' SiglipImageProcessor (PIL backend)
//    float math: float32(float64(x) * (1/255)), then (x - 0.5f) / 0.5f in float32.
//  BigVisionBilinear: big_vision's antialiased bilinear resize, cast to uint8, x / 127.5f - 1.
std::vector<float> preprocess_image(const Image& image, int size, ResizeFilter filter);

// The float math of preprocess_image alone, for an image already at the model size.
std::vector<float> normalize_image(const Image& image, ResizeFilter filter);

// EXIF orientation (1-8) applied to an image, as PIL.ImageOps.exif_transpose does; other values
// leave the image unchanged.
Image apply_orientation(const Image& image, int orientation);

}  // namespace pg
