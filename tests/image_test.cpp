// Image decoding, EXIF orientation, PIL-bicubic / big_vision-bilinear resizing and SigLIP
// preprocessing against golden data made by tools/golden/make_image_golden.py (Pillow 13.0.0,
// transformers 5.x, TensorFlow 2.17 for big_vision). Every comparison prints its max abs
// difference and the fraction of identical values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/image.h"
#include "paligemma/npy.h"
#include "test_util.h"

namespace pg {
namespace {

namespace fs = std::filesystem;

std::string images_dir() { return test::fixture("images"); }
std::string image_fixture(const std::string& rel) { return images_dir() + "/" + rel; }

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream in(image_fixture("manifest.json"));
    if (!in) throw std::runtime_error("missing " + image_fixture("manifest.json") +
                                      " (run tools/golden/make_image_golden.py)");
    return nlohmann::json::parse(in);
  }();
  return m;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct Diff {
  double max_abs = 0;
  size_t identical = 0, total = 0;
  double fraction() const { return total ? static_cast<double>(identical) / total : 1.0; }
};

template <typename A, typename B>
Diff compare(const A* a, const B* b, size_t n) {
  Diff d;
  d.total = n;
  for (size_t i = 0; i < n; ++i) {
    double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (a[i] == b[i]) ++d.identical;
    d.max_abs = std::max(d.max_abs, std::fabs(x - y));
  }
  return d;
}

void report(const std::string& kind, const std::string& name, const std::string& extra, const Diff& d) {
  std::printf("[%-9s] %-34s %-40s max_diff=%-10.3g identical=%.4f%%\n", kind.c_str(), name.c_str(), extra.c_str(),
              d.max_abs, 100.0 * d.fraction());
}

// Golden HxWx3 uint8 array vs an Image (optionally starting at row `row0` of the image).
Diff compare_image(const Image& img, const NpyArray& golden, int row0, std::string* shape_error) {
  if (golden.dtype != "u1" || golden.shape.size() != 3 || golden.shape[2] != 3) {
    *shape_error = "golden is not HxWx3 uint8";
    return {};
  }
  const int64_t gh = golden.shape[0], gw = golden.shape[1];
  if (gw != img.width || (row0 == 0 && gh != img.height) || row0 + gh > img.height) {
    *shape_error = "size " + std::to_string(img.width) + "x" + std::to_string(img.height) + " vs golden " +
                   std::to_string(gw) + "x" + std::to_string(gh);
    return {};
  }
  return compare(img.rgb.data() + static_cast<size_t>(row0) * img.width * 3, golden.bytes.data(), golden.bytes.size());
}

Image input_image(const std::string& rel) { return load_image(image_fixture(rel)); }

// ---------------------------------------------------------------------------------------------
// Decoding: every format variant against transformers.image_utils.load_image

TEST(ImageDecode, MatchesPillowForEveryVariant) {
  const auto& cases = manifest()["decode"];
  ASSERT_GT(cases.size(), 50u);
  for (const auto& c : cases) {
    const std::string file = c["file"], what = c["what"];
    SCOPED_TRACE(file + " (" + what + ")");
    Image img;
    try {
      img = input_image(file);
    } catch (const Error& e) {
      ADD_FAILURE() << "load_image failed: " << e.what();
      continue;
    }
    NpyArray golden = read_npy(image_fixture(c["golden"]));
    std::string shape_error;
    Diff d = compare_image(img, golden, c.value("row0", 0), &shape_error);
    ASSERT_TRUE(shape_error.empty()) << shape_error;
    report("decode", file, what.substr(0, 40), d);
    EXPECT_EQ(d.identical, d.total) << "max diff " << d.max_abs;
  }
}

TEST(ImageDecode, CoversEveryFormatAndMode) {
  std::set<std::string> files;
  for (const auto& c : manifest()["decode"]) files.insert(c["file"].get<std::string>());
  const char* required[] = {
      "jpeg_444.jpg", "jpeg_420.jpg", "jpeg_422.jpg", "jpeg_progressive.jpg", "jpeg_gray.jpg", "jpeg_cmyk.jpg",
      "jpeg_cmyk_k.jpg", "jpeg_restart.jpg", "png_rgb.png", "png_rgba.png", "png_gray.png", "png_gray_alpha.png",
      "png_palette.png", "png_palette_trns.png", "png_palette_4bit.png", "png_1bit.png", "png_gray16.png",
      "png_gray16_mixed.png", "png_rgb16.png", "png_rgba16.png", "png_la16.png", "png_rgb_interlaced.png",
      "png_gray_2bit.png", "png_gray_trns.png", "png_rgb_trns.png", "bmp_rgb.bmp", "bmp_palette.bmp",
      "bmp_565.bmp", "bmp_555.bmp", "bmp_topdown.bmp", "bmp_rgba.bmp", "gif_basic.gif", "gif_trns.gif",
      "gif_interlaced.gif", "gif_partial_frame_trns.gif", "gif_animated.gif", "pnm_rgb.ppm", "pnm_gray.pgm",
      "pnm_bitmap.pbm", "pnm_gray16.pgm", "pnm_rgb_maxval100.ppm", "pnm_plain.ppm", "webp_lossy.webp",
      "webp_lossy_alpha.webp", "webp_lossless.webp", "webp_lossless_alpha.webp", "webp_animated.webp",
      "png_exif_orient6.png", "png_exif_after_idat_orient8.png", "webp_exif_orient6.webp", "jpeg_xmp_orient6.jpg",
      "../photos/rocket.jpg"};
  for (const char* r : required) EXPECT_TRUE(files.count(r)) << r << " missing from the image golden manifest";
  for (int o = 1; o <= 8; ++o) EXPECT_TRUE(files.count("jpeg_exif_orient" + std::to_string(o) + ".jpg")) << o;
}

TEST(ImageDecode, DetectsFormatFromBytesNotExtension) {
  test::TempDir t;
  // A PNG named .jpg and a JPEG named .png decode as what they are.
  fs::copy_file(image_fixture("png_rgb.png"), t.file("really_png.jpg"));
  fs::copy_file(image_fixture("jpeg_444.jpg"), t.file("really_jpeg.png"));
  fs::copy_file(image_fixture("webp_lossy.webp"), t.file("no_extension"));
  std::string err;
  NpyArray g1 = read_npy(image_fixture("png_rgb.npy"));
  NpyArray g2 = read_npy(image_fixture("jpeg_444.npy"));
  NpyArray g3 = read_npy(image_fixture("webp_lossy.npy"));
  EXPECT_EQ(compare_image(load_image(t.file("really_png.jpg")), g1, 0, &err).max_abs, 0);
  EXPECT_EQ(compare_image(load_image(t.file("really_jpeg.png")), g2, 0, &err).max_abs, 0);
  EXPECT_EQ(compare_image(load_image(t.file("no_extension")), g3, 0, &err).max_abs, 0);
  EXPECT_TRUE(err.empty()) << err;
  auto png = read_bytes(image_fixture("png_rgb.png"));
  EXPECT_EQ(detect_image_format(png.data(), png.size()), "PNG");
}

TEST(ImageDecode, FromMemoryEqualsFromFile) {
  auto bytes = read_bytes(image_fixture("jpeg_progressive.jpg"));
  Image a = load_image_from_memory(bytes.data(), bytes.size(), "memory.jpg");
  Image b = input_image("jpeg_progressive.jpg");
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.rgb, b.rgb);
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation

TEST(ImageOrientation, ExifOrientationsTransformTheUprightPixels) {
  // The orientation variants hold the same JPEG pixels; only the EXIF tag differs.
  const Image base = input_image("jpeg_exif_orient1.jpg");
  for (int o = 1; o <= 8; ++o) {
    SCOPED_TRACE("orientation " + std::to_string(o));
    Image img = input_image("jpeg_exif_orient" + std::to_string(o) + ".jpg");
    Image expected = apply_orientation(base, o);
    EXPECT_EQ(img.width, o >= 5 ? base.height : base.width);
    EXPECT_EQ(img.width, expected.width);
    EXPECT_EQ(img.height, expected.height);
    EXPECT_EQ(img.rgb, expected.rgb);
  }
  for (const char* invalid : {"jpeg_exif_orient0.jpg", "jpeg_exif_orient9.jpg"}) {
    Image img = input_image(invalid);
    EXPECT_EQ(img.rgb, base.rgb) << invalid << ": an invalid orientation is ignored";
  }
  // EXIF orientation 1 wins over an XMP orientation (Pillow reads XMP only without the EXIF tag).
  EXPECT_EQ(input_image("jpeg_exif1_xmp6.jpg").rgb, base.rgb);
  EXPECT_EQ(input_image("jpeg_xmp_orient6.jpg").rgb, apply_orientation(base, 6).rgb);
}

TEST(ImageOrientation, ApplyOrientationOnATinyImage) {
  // 3x2 image, pixel value = index; expected layouts from PIL's Image.transpose.
  Image img;
  img.width = 3;
  img.height = 2;
  for (int i = 0; i < 6; ++i) img.rgb.insert(img.rgb.end(), {uint8_t(i), uint8_t(i), uint8_t(i)});
  auto first_channel = [](const Image& im) {
    std::vector<int> v;
    for (size_t i = 0; i < im.rgb.size(); i += 3) v.push_back(im.rgb[i]);
    return v;
  };
  // 0 1 2 / 3 4 5
  EXPECT_EQ(first_channel(apply_orientation(img, 2)), (std::vector<int>{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(first_channel(apply_orientation(img, 3)), (std::vector<int>{5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(first_channel(apply_orientation(img, 4)), (std::vector<int>{3, 4, 5, 0, 1, 2}));
  EXPECT_EQ(first_channel(apply_orientation(img, 5)), (std::vector<int>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(first_channel(apply_orientation(img, 6)), (std::vector<int>{3, 0, 4, 1, 5, 2}));
  EXPECT_EQ(first_channel(apply_orientation(img, 7)), (std::vector<int>{5, 2, 4, 1, 3, 0}));
  EXPECT_EQ(first_channel(apply_orientation(img, 8)), (std::vector<int>{2, 5, 1, 4, 0, 3}));
  EXPECT_EQ(apply_orientation(img, 6).width, 2);
  EXPECT_EQ(apply_orientation(img, 1).rgb, img.rgb);
}

// ---------------------------------------------------------------------------------------------
// Resizing

TEST(ImageResize, PilBicubicMatchesPillow) {
  const auto& cases = manifest()["resize"];
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    const std::string input = c["input"];
    const int w = c["width"], h = c["height"];
    SCOPED_TRACE(input + " -> " + std::to_string(w) + "x" + std::to_string(h));
    Image src = input_image(input);
    Image out = resize_image(src, w, h, ResizeFilter::PilBicubic);
    NpyArray golden = read_npy(image_fixture(c["golden"]));
    std::string shape_error;
    Diff d = compare_image(out, golden, 0, &shape_error);
    ASSERT_TRUE(shape_error.empty()) << shape_error;
    report("bicubic", input, std::to_string(src.width) + "x" + std::to_string(src.height) + " -> " +
                                  std::to_string(w) + "x" + std::to_string(h), d);
    // The issue's acceptance bound ...
    EXPECT_LE(d.max_abs, 1);
    EXPECT_GE(d.fraction(), 0.99);
    // ... and what the implementation achieves: bit-identical.
    EXPECT_EQ(d.identical, d.total);
  }
}

TEST(ImageResize, SameSizeIsACopy) {
  Image src = input_image("png_rgb.png");
  EXPECT_EQ(resize_image(src, src.width, src.height, ResizeFilter::PilBicubic).rgb, src.rgb);
  EXPECT_EQ(resize_image(src, src.width, src.height, ResizeFilter::BigVisionBilinear).rgb, src.rgb);
}

TEST(ImageResize, BigVisionBilinearMatchesTensorFlow) {
  const auto& cases = manifest()["bigvision"];
  if (cases.empty()) GTEST_SKIP() << "golden data made without TensorFlow (--tf-python)";
  for (const auto& c : cases) {
    const int w = c["width"], h = c["height"];
    if (w == 0) continue;  // the value-range case, below
    const std::string input = c["input"];
    SCOPED_TRACE(input + " -> " + std::to_string(w) + "x" + std::to_string(h));
    Image src = input_image(input);
    Image out = resize_image(src, w, h, ResizeFilter::BigVisionBilinear);
    NpyArray golden = read_npy(image_fixture(c["golden"]));
    std::string shape_error;
    Diff d = compare_image(out, golden, 0, &shape_error);
    ASSERT_TRUE(shape_error.empty()) << shape_error;
    report("bilinear", input, std::to_string(src.width) + "x" + std::to_string(src.height) + " -> " +
                                   std::to_string(w) + "x" + std::to_string(h), d);
    EXPECT_EQ(d.identical, d.total) << "max diff " << d.max_abs;
  }
}

TEST(ImageResize, RejectsBadArguments) {
  Image src = input_image("png_rgb.png");
  EXPECT_THROW(resize_image(src, 0, 10, ResizeFilter::PilBicubic), Error);
  EXPECT_THROW(resize_image(src, 10, -1, ResizeFilter::BigVisionBilinear), Error);
  Image broken = src;
  broken.rgb.pop_back();
  EXPECT_THROW(resize_image(broken, 10, 10, ResizeFilter::PilBicubic), Error);
  EXPECT_THROW(preprocess_image(src, 0, ResizeFilter::PilBicubic), Error);
}

// ---------------------------------------------------------------------------------------------
// Preprocessing (pixel_values)

TEST(ImagePreprocess, SiglipProcessorPixelValuesAreBitIdentical) {
  const auto& cases = manifest()["siglip"];
  ASSERT_GE(cases.size(), 2u);
  for (const auto& c : cases) {
    const std::string input = c["input"];
    const int size = c["size"];
    SCOPED_TRACE(input);
    std::vector<float> pv = preprocess_image(input_image(input), size, ResizeFilter::PilBicubic);
    NpyArray golden = read_npy(image_fixture(c["golden"]));
    ASSERT_EQ(golden.dtype, "f4");
    ASSERT_EQ(golden.shape, (std::vector<int64_t>{1, 3, size, size}));
    std::vector<float> g = golden.as_f32();
    ASSERT_EQ(pv.size(), g.size());
    Diff d = compare(pv.data(), g.data(), g.size());
    report("siglip", input, "pixel_values 3x" + std::to_string(size) + "x" + std::to_string(size), d);
    EXPECT_EQ(d.identical, d.total) << "max diff " << d.max_abs;
  }
}

TEST(ImagePreprocess, BigVisionValueRange) {
  const auto& cases = manifest()["bigvision"];
  if (cases.empty()) GTEST_SKIP() << "golden data made without TensorFlow (--tf-python)";
  bool found = false;
  for (const auto& c : cases) {
    if (c["width"] != 0) continue;
    found = true;
    Image ramp = input_image(c["input"]);
    std::vector<float> x = normalize_image(ramp, ResizeFilter::BigVisionBilinear);
    std::vector<float> g = read_npy(image_fixture(c["golden"])).as_f32();
    ASSERT_EQ(x.size(), g.size());
    Diff d = compare(x.data(), g.data(), g.size());
    report("bv-range", c["input"], "x / 127.5 - 1, every uint8 value", d);
    EXPECT_EQ(d.identical, d.total);
    // preprocess_image = resize + value range
    Image photo = load_image(test::fixture("photos/coffee.png"));
    std::vector<float> pv = preprocess_image(photo, 56, ResizeFilter::BigVisionBilinear);
    std::vector<float> expect =
        normalize_image(resize_image(photo, 56, 56, ResizeFilter::BigVisionBilinear), ResizeFilter::BigVisionBilinear);
    EXPECT_EQ(pv, expect);
    EXPECT_EQ(pv.size(), 3u * 56 * 56);
  }
  EXPECT_TRUE(found);
}

// ---------------------------------------------------------------------------------------------
// Bad input: a pg::Error naming the file and the problem, never a crash.

std::string load_error(const std::string& path) {
  try {
    load_image(path);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT A pg::Error: ") + e.what();
  }
  return "NO ERROR";
}

void expect_error(const std::string& path, const std::vector<std::string>& needles) {
  std::string msg = load_error(path);
  std::printf("[error    ] %s\n", msg.c_str());
  EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

std::vector<uint8_t> head(const std::vector<uint8_t>& v, size_t n) { return {v.begin(), v.begin() + std::min(n, v.size())}; }

void put_be32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  for (int i = 0; i < 4; ++i) v[at + i] = static_cast<uint8_t>(x >> (24 - 8 * i));
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

TEST(ImageErrors, MissingEmptyAndDirectory) {
  test::TempDir t;
  expect_error(t.file("does_not_exist.png"), {"cannot open", "No such file"});
  write_bytes(t.file("empty.jpg"), {});
  expect_error(t.file("empty.jpg"), {"empty"});
  fs::create_directory(t.file("a_directory.png"));
  expect_error(t.file("a_directory.png"), {"directory"});
}

TEST(ImageErrors, TruncatedFiles) {
  test::TempDir t;
  struct Case {
    const char* fixture;
    double keep;  // fraction of the file kept
    std::vector<std::string> needles;
  } cases[] = {
      {"jpeg_444.jpg", 0.5, {"truncated JPEG"}},
      {"jpeg_progressive.jpg", 0.6, {"truncated JPEG"}},
      {"jpeg_gray.jpg", 0.02, {"JPEG"}},
      {"png_rgb.png", 0.5, {"truncated PNG"}},
      {"png_rgb.png", 0.01, {"truncated PNG"}},
      {"png_gray16.png", 0.8, {"truncated PNG"}},
      {"webp_lossy.webp", 0.5, {"truncated WebP"}},
      {"webp_lossless_alpha.webp", 0.9, {"truncated WebP"}},
      {"gif_basic.gif", 0.5, {"truncated GIF"}},
      {"bmp_rgb.bmp", 0.5, {"truncated BMP"}},
      {"bmp_565.bmp", 0.7, {"truncated BMP"}},
      {"pnm_rgb.ppm", 0.5, {"truncated PNM"}},
      {"pnm_bitmap.pbm", 0.5, {"truncated PBM"}},
      {"pnm_plain.ppm", 0.5, {"truncated PNM"}},
  };
  int i = 0;
  for (const auto& c : cases) {
    auto bytes = read_bytes(image_fixture(c.fixture));
    ASSERT_FALSE(bytes.empty()) << c.fixture;
    std::string path = t.file("cut" + std::to_string(i++) + "_" + c.fixture);
    write_bytes(path, head(bytes, static_cast<size_t>(bytes.size() * c.keep)));
    expect_error(path, c.needles);
  }
}

TEST(ImageErrors, CorruptFiles) {
  test::TempDir t;
  // JPEG: valid SOI, then garbage (the case of bad_input_test.cpp).
  write_bytes(t.file("garbage.jpg"), {0xFF, 0xD8, 0xFF, 0xE0, 'g', 'a', 'r', 'b', 'a', 'g', 'e'});
  expect_error(t.file("garbage.jpg"), {"JPEG"});
  // JPEG: a broken SOF (zero width).
  {
    auto b = read_bytes(image_fixture("jpeg_444.jpg"));
    for (size_t i = 2; i + 9 < b.size(); ++i)
      if (b[i] == 0xFF && b[i + 1] == 0xC0) {
        b[i + 7] = 0;
        b[i + 8] = 0;
        break;
      }
    write_bytes(t.file("zero_width.jpg"), b);
    expect_error(t.file("zero_width.jpg"), {"JPEG"});
  }
  // PNG: a flipped byte in IHDR fails its CRC; a damaged IDAT fails zlib.
  {
    auto b = read_bytes(image_fixture("png_rgb.png"));
    b[20] ^= 0x40;
    write_bytes(t.file("bad_crc.png"), b);
    expect_error(t.file("bad_crc.png"), {"corrupt PNG", "CRC", "IHDR"});
    b = read_bytes(image_fixture("png_rgb.png"));
    for (size_t i = 8; i + 8 < b.size();) {
      uint32_t len = (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
      if (std::memcmp(&b[i + 4], "IDAT", 4) == 0) {
        for (size_t k = i + 10; k < i + 8 + len && k < i + 60; ++k) b[k] ^= 0xA5;
        break;
      }
      i += 12 + len;
    }
    write_bytes(t.file("bad_idat.png"), b);
    expect_error(t.file("bad_idat.png"), {"corrupt PNG"});
  }
  // WebP: garbage in the VP8 bitstream.
  {
    auto b = read_bytes(image_fixture("webp_lossy.webp"));
    for (size_t k = 20; k < 40 && k < b.size(); ++k) b[k] = 0xFF;
    write_bytes(t.file("garbage.webp"), b);
    expect_error(t.file("garbage.webp"), {"WebP"});
  }
  // BMP with RLE compression (Pillow reads it; we report it as unsupported).
  {
    auto b = read_bytes(image_fixture("bmp_palette.bmp"));
    b[30] = 1;
    write_bytes(t.file("rle.bmp"), b);
    expect_error(t.file("rle.bmp"), {"RLE", "not supported"});
  }
  // GIF without image.
  write_bytes(t.file("noimage.gif"), {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0, 0x3B});
  expect_error(t.file("noimage.gif"), {"GIF", "no image"});
  // PNM with a bad header.
  {
    std::string s = "P6\n12 x\n255\n";
    write_bytes(t.file("bad_header.ppm"), std::vector<uint8_t>(s.begin(), s.end()));
    expect_error(t.file("bad_header.ppm"), {"PNM", "height"});
  }
}

TEST(ImageErrors, UnsupportedAndUnknownFormats) {
  test::TempDir t;
  // A real little TIFF header (II*, first IFD at 8).
  write_bytes(t.file("scan.tif"), {'I', 'I', 42, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  expect_error(t.file("scan.tif"), {"unsupported image format TIFF"});
  write_bytes(t.file("big.tiff"), {'M', 'M', 0, 42, 0, 0, 0, 8});
  expect_error(t.file("big.tiff"), {"TIFF"});
  write_bytes(t.file("photo.heic"), {0, 0, 0, 24, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c', 0, 0, 0, 0});
  expect_error(t.file("photo.heic"), {"unsupported image format HEIF"});
  std::string text = "this is text, not an image";
  write_bytes(t.file("notes.png"), std::vector<uint8_t>(text.begin(), text.end()));
  expect_error(t.file("notes.png"), {"unknown image format"});
}

TEST(ImageErrors, AbsurdDimensions) {
  test::TempDir t;
  // PNG: IHDR claiming 100000 x 100000 (valid CRC), then nothing.
  {
    auto b = head(read_bytes(image_fixture("png_rgb.png")), 33);
    put_be32(b, 16, 100000);
    put_be32(b, 20, 100000);
    put_be32(b, 29, crc32(&b[12], 17));
    write_bytes(t.file("huge.png"), b);
    expect_error(t.file("huge.png"), {"too large", "100000x100000"});
  }
  // JPEG: SOF claiming 65000 x 65000.
  {
    auto b = read_bytes(image_fixture("jpeg_444.jpg"));
    for (size_t i = 2; i + 9 < b.size(); ++i)
      if (b[i] == 0xFF && b[i + 1] == 0xC0) {
        b[i + 5] = 0xFD;  // height 65000 = 0xFDE8
        b[i + 6] = 0xE8;
        b[i + 7] = 0xFD;
        b[i + 8] = 0xE8;
        break;
      }
    write_bytes(t.file("huge.jpg"), b);
    expect_error(t.file("huge.jpg"), {"too large", "65000x65000"});
  }
  // WebP: VP8X canvas 16384 x 16384.
  {
    std::vector<uint8_t> b = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X', 10, 0, 0, 0,
                              0,   0,   0,   0,   0xFF, 0x3F, 0, 0xFF, 0x3F, 0};
    write_bytes(t.file("huge.webp"), b);
    expect_error(t.file("huge.webp"), {"WebP"});
  }
  // GIF: 65535 x 65535 screen.
  write_bytes(t.file("huge.gif"), {'G', 'I', 'F', '8', '9', 'a', 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x3B});
  expect_error(t.file("huge.gif"), {"too large"});
  // BMP: 100000 x 100000.
  {
    auto b = read_bytes(image_fixture("bmp_rgb.bmp"));
    b[18] = 0xA0; b[19] = 0x86; b[20] = 0x01; b[21] = 0;  // 100000
    b[22] = 0xA0; b[23] = 0x86; b[24] = 0x01; b[25] = 0;
    write_bytes(t.file("huge.bmp"), b);
    expect_error(t.file("huge.bmp"), {"too large"});
  }
  // PPM: 100000 x 100000.
  {
    std::string s = "P6\n100000 100000\n255\n";
    write_bytes(t.file("huge.ppm"), std::vector<uint8_t>(s.begin(), s.end()));
    expect_error(t.file("huge.ppm"), {"too large"});
  }
}

TEST(ImageErrors, RandomCorruptionNeverCrashes) {
  // Every fixture, truncated and with random bytes flipped: either it still decodes or it is a
  // pg::Error naming the source; never a crash, an abort or another exception type.
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int loaded = 0, errors = 0;
  const char* env = std::getenv("PG_IMAGE_FUZZ_ROUNDS");  // more rounds for ad-hoc fuzzing
  const int rounds = env ? std::max(1, std::atoi(env)) : 24;
  for (const auto& c : manifest()["decode"]) {
    const std::string file = c["file"];
    auto original = read_bytes(image_fixture(file));
    for (int round = 0; round < rounds; ++round) {
      auto b = original;
      if (round % 3 == 0) {
        b.resize(next() % b.size());
      } else {
        int flips = 1 + static_cast<int>(next() % 8);
        // Bias half of the damage towards the headers, where the parsers live.
        for (int i = 0; i < flips; ++i) {
          size_t at = (round % 2) ? next() % std::min<size_t>(b.size(), 64) : next() % b.size();
          b[at] ^= static_cast<uint8_t>(1 + next() % 255);
        }
      }
      const std::string label = "mutated " + file + " #" + std::to_string(round);
      try {
        Image img = load_image_from_memory(b.data(), b.size(), label);
        ASSERT_EQ(img.rgb.size(), static_cast<size_t>(img.width) * img.height * 3) << label;
        ++loaded;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
        ++errors;
      }
    }
  }
  std::printf("[fuzz     ] %d mutated files decoded, %d rejected with pg::Error\n", loaded, errors);
}

TEST(ImageErrors, ErrorsFromMemoryNameTheSource) {
  std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8};
  try {
    load_image_from_memory(junk.data(), junk.size(), "upload #3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("upload #3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_image_from_memory(nullptr, 0, "nothing"), Error);
}

}  // namespace
}  // namespace pg
