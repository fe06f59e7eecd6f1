// Drawing boxes / masks / label tags and PNG output: pixel checks, clipping, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "paligemma/annotate.h"
#include "paligemma/error.h"
#include "paligemma/image.h"
#include "test_util.h"

namespace pg {
namespace {

using Rgb = std::array<uint8_t, 3>;

// A gradient, so that "unchanged" means something at every pixel.
Image gradient(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.rgb[(size_t(y) * size_t(w) + size_t(x)) * 3];
      p[0] = uint8_t(40 + x % 150), p[1] = uint8_t(60 + y % 150), p[2] = uint8_t(90 + (x + y) % 50);
    }
  return img;
}

Rgb px(const Image& img, int x, int y) {
  const uint8_t* p = &img.rgb[(size_t(y) * size_t(img.width) + size_t(x)) * 3];
  return {p[0], p[1], p[2]};
}

int count_changed(const Image& a, const Image& b) {
  int n = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x) n += px(a, x, y) != px(b, x, y);
  return n;
}

AnnotateOptions no_text_options(int line_width = 3) {
  AnnotateOptions o;
  o.line_width = line_width;
  o.font_path = "/nonexistent/font.ttf";  // proves the font is not loaded when no tag is drawn
  return o;
}

TEST(Annotate, PaletteIsDistinctAndCycles) {
  for (size_t i = 0; i < 10; ++i)
    for (size_t j = i + 1; j < 10; ++j) {
      const Rgb a = annotation_color(i), b = annotation_color(j);
      const int d = std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]);
      EXPECT_GT(d, 80) << i << " vs " << j;
    }
  EXPECT_EQ(annotation_color(0), annotation_color(10));
  EXPECT_EQ(annotation_color(3), annotation_color(23));
}

TEST(Annotate, BoxOutlineHasTheObjectColour) {
  const Image img = gradient(100, 80);
  const Image out = annotate_image(img, {{"", {20, 30, 60, 70}}, {"", {70, 5, 90, 25}}}, no_text_options(3));
  const Rgb c0 = annotation_color(0), c1 = annotation_color(1);
  ASSERT_NE(c0, c1);
  // Object 0 covers pixels [20, 60) x [30, 70); the outline is the 3-pixel band inside.
  for (int y = 30; y < 70; ++y) {
    EXPECT_EQ(px(out, 20, y), c0);
    EXPECT_EQ(px(out, 22, y), c0);
    EXPECT_EQ(px(out, 57, y), c0);
    EXPECT_EQ(px(out, 59, y), c0);
    EXPECT_EQ(px(out, 19, y), px(img, 19, y));
    EXPECT_EQ(px(out, 60, y), px(img, 60, y));
  }
  for (int x = 20; x < 60; ++x) {
    EXPECT_EQ(px(out, x, 30), c0);
    EXPECT_EQ(px(out, x, 32), c0);
    EXPECT_EQ(px(out, x, 69), c0);
    EXPECT_EQ(px(out, x, 29), px(img, x, 29));
    EXPECT_EQ(px(out, x, 70), px(img, x, 70));
  }
  EXPECT_EQ(px(out, 23, 50), px(img, 23, 50));  // interior untouched
  EXPECT_EQ(px(out, 40, 50), px(img, 40, 50));
  EXPECT_EQ(px(out, 70, 5), c1);
  EXPECT_EQ(px(out, 89, 24), c1);
  // Exactly the two outlines changed: 40x40 - 34x34 and 20x20 - 14x14.
  EXPECT_EQ(count_changed(img, out), (1600 - 34 * 34) + (400 - 14 * 14));
  // The input is not modified.
  EXPECT_EQ(img.rgb, gradient(100, 80).rgb);
}

TEST(Annotate, FractionalBoxCoversItsPixels) {
  const Image img = gradient(50, 50);
  const Image out = annotate_image(img, {{"", {10.5, 10.2, 20.5, 20.9}}}, no_text_options(1));
  const Rgb c = annotation_color(0);
  EXPECT_EQ(px(out, 10, 10), c);  // floor(10.5), floor(10.2)
  EXPECT_EQ(px(out, 20, 20), c);  // ceil(20.5) - 1, ceil(20.9) - 1
  EXPECT_EQ(px(out, 21, 15), px(img, 21, 15));
  EXPECT_EQ(px(out, 15, 15), px(img, 15, 15));
}

TEST(Annotate, AutoLineWidth) {
  const Image img = gradient(800, 600);  // min side 600 -> round(600 / 200) = 3
  AnnotateOptions o = no_text_options(0);
  const Image out = annotate_image(img, {{"", {100, 100, 300, 300}}}, o);
  const Rgb c = annotation_color(0);
  EXPECT_EQ(px(out, 102, 200), c);
  EXPECT_EQ(px(out, 103, 200), px(img, 103, 200));
  const Image small = gradient(60, 60);  // at least 2
  const Image out2 = annotate_image(small, {{"", {10, 10, 50, 50}}}, o);
  EXPECT_EQ(px(out2, 11, 30), c);
  EXPECT_EQ(px(out2, 12, 30), px(small, 12, 30));
}

TEST(Annotate, MaskIsBlendedTowardTheColour) {
  const Image img = gradient(64, 48);
  BinaryMask mask;
  mask.width = 64;
  mask.height = 48;
  mask.data.assign(64 * 48, 0);
  for (int y = 10; y < 30; ++y)
    for (int x = 5; x < 25; ++x)
      if ((x - 15) * (x - 15) + (y - 20) * (y - 20) < 80) mask.data[size_t(y) * 64 + size_t(x)] = 1;
  AnnotateOptions o = no_text_options(2);
  o.mask_alpha = 0.5f;
  // The box is elsewhere, so mask pixels show the blend alone.
  const Image out = annotate_image(img, {{"", {40, 5, 60, 40}, std::numeric_limits<double>::quiet_NaN(), &mask}}, o);
  const Rgb c = annotation_color(0);
  int inside = 0;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) {
      const bool in_box = x >= 40 && x < 60 && y >= 5 && y < 40;
      if (in_box) continue;
      const Rgb before = px(img, x, y), after = px(out, x, y);
      if (mask.data[size_t(y) * 64 + size_t(x)]) {
        ++inside;
        for (int k = 0; k < 3; ++k) {
          EXPECT_EQ(int(after[k]), int(std::lround(0.5f * float(before[k]) + 0.5f * float(c[k]))));
          // strictly closer to the colour unless already equal
          EXPECT_LE(std::abs(int(after[k]) - int(c[k])), std::abs(int(before[k]) - int(c[k])));
        }
        EXPECT_NE(after, before);
      } else {
        EXPECT_EQ(after, before) << x << "," << y;
      }
    }
  EXPECT_GT(inside, 100);
  // Alpha 0 leaves the mask invisible; alpha 1 paints the colour.
  o.mask_alpha = 0.f;
  Image out0 = annotate_image(img, {{"", {40, 5, 60, 40}, NAN, &mask}}, o);
  EXPECT_EQ(px(out0, 15, 20), px(img, 15, 20));
  o.mask_alpha = 1.f;
  Image out1 = annotate_image(img, {{"", {40, 5, 60, 40}, NAN, &mask}}, o);
  EXPECT_EQ(px(out1, 15, 20), c);
}

struct TagStats {
  int background = 0, bright = 0, dark = 0;
};

TagStats tag_stats(const Image& out, int x0, int y0, int x1, int y1, const Rgb& bg) {
  TagStats s;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const Rgb p = px(out, x, y);
      if (p == bg) ++s.background;
      else if (p[0] > 200 && p[1] > 200 && p[2] > 200) ++s.bright;
      else if (p[0] < 60 && p[1] < 60 && p[2] < 60) ++s.dark;
    }
  return s;
}

TEST(Annotate, LabelTagAboveTheBoxWithTextPixels) {
  const Image img = gradient(200, 120);
  AnnotateOptions o;
  o.font_px = 16;
  o.line_width = 2;
  const Image out = annotate_image(img, {{"cat", {20, 60, 120, 110}, 0.93}}, o);
  const Rgb bg = annotation_color(0);  // red -> white text
  // The tag sits in the rows just above y = 60, starting at x = 20.
  TagStats s = tag_stats(out, 20, 30, 120, 60, bg);
  EXPECT_GT(s.background, 200);
  EXPECT_GT(s.bright, 20);
  EXPECT_EQ(px(out, 21, 58), bg);  // tag background (padding) right above the box corner
  // Nothing left of the tag, and nothing far above it, changed.
  for (int y = 0; y < 120; ++y) EXPECT_EQ(px(out, 19, y), px(img, 19, y));
  for (int x = 0; x < 200; ++x) EXPECT_EQ(px(out, x, 5), px(img, x, 5));
  // The tag's right part: "cat 0.93" is wider than "cat".
  const Image plain = annotate_image(img, {{"cat", {20, 60, 120, 110}}}, o);
  int wide = 0, narrow = 0;
  for (int x = 0; x < 200; ++x) {
    wide += px(out, x, 58) == bg;
    narrow += px(plain, x, 58) == bg;
  }
  EXPECT_GT(wide, narrow + 15);
}

TEST(Annotate, DarkTextOnBrightColour) {
  // Objects 0..7 lie outside the image (drawn nowhere); object 8 gets palette colour 8 (yellow).
  const Image img = gradient(200, 120);
  std::vector<Annotation> objects;
  for (int i = 0; i < 8; ++i) objects.push_back({"x", {500, 500, 600, 600}});
  objects.push_back({"dog", {30, 60, 150, 110}, 0.5});
  AnnotateOptions o;
  o.font_px = 18;
  const Image out = annotate_image(img, objects, o);
  const Rgb bg = annotation_color(8);
  TagStats s = tag_stats(out, 30, 25, 150, 60, bg);
  EXPECT_GT(s.background, 200);
  EXPECT_GT(s.dark, 20);
  EXPECT_EQ(s.bright, 0);
}

TEST(Annotate, TagGoesInsideWhenTheBoxTouchesTheTop) {
  const Image img = gradient(200, 120);
  AnnotateOptions o;
  o.font_px = 16;
  const Image out = annotate_image(img, {{"person", {10, 0, 150, 100}, 0.71}}, o);
  const Rgb bg = annotation_color(0);
  TagStats s = tag_stats(out, 10, 0, 150, 30, bg);
  EXPECT_GT(s.background, 200);
  EXPECT_GT(s.bright, 20);
}

TEST(Annotate, TagStaysInsideTheImageAtTheRightEdge) {
  const Image img = gradient(120, 80);
  AnnotateOptions o;
  o.font_px = 14;
  const Image out = annotate_image(img, {{"a long label", {100, 40, 118, 70}}}, o);
  const Rgb bg = annotation_color(0);
  // The tag is shifted left so that it ends at the image's right edge.
  EXPECT_EQ(px(out, 119, 38), bg);
  TagStats s = tag_stats(out, 0, 15, 120, 40, bg);
  EXPECT_GT(s.bright, 30);
}

TEST(Annotate, ClippingNeverCrashes) {
  const Image img = gradient(100, 80);
  AnnotateOptions o;
  o.line_width = 2;
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Annotation> objects = {
      {"big", {-50, -50, 500, 500}, 0.5},   // every edge outside: only the tag shows
      {"corner", {90, 70, 200, 200}},      // partly outside
      {"gone", {200, 200, 300, 300}, 0.9},  // wholly outside
      {"left", {-300, 10, -1, 50}},         // wholly outside, to the left
      {"nan", {NAN, 10, 20, 30}},
      {"huge", {-1e300, 1e300, inf, -inf}},
      {"inverted", {60, 50, 40, 30}},
      {"", {30, 75, 30, 75}},  // degenerate, one pixel
  };
  Image out;
  ASSERT_NO_THROW(out = annotate_image(img, objects, o));
  // Partly outside: the visible left and top edges are drawn.
  EXPECT_EQ(px(out, 90, 75), annotation_color(1));
  EXPECT_EQ(px(out, 95, 71), annotation_color(1));
  EXPECT_EQ(px(out, 95, 75), px(img, 95, 75));
  // Inverted = swapped corners.
  EXPECT_EQ(px(out, 40, 40), annotation_color(6));
  EXPECT_EQ(px(out, 59, 40), annotation_color(6));
  EXPECT_EQ(px(out, 30, 75), annotation_color(7));
  EXPECT_EQ(px(out, 31, 75), px(img, 31, 75));

  // Wholly outside / NaN boxes leave the image unchanged, tag included.
  const Image none = annotate_image(img, {{"gone", {200, 200, 300, 300}, 0.9}, {"nan", {NAN, 10, 20, 30}, 0.9},
                                          {"left", {-300, 10, -1, 50}, 0.9}},
                                    o);
  EXPECT_EQ(none.rgb, img.rgb);
  // Tiny images, empty images.
  EXPECT_NO_THROW(annotate_image(gradient(3, 2), {{"cat", {0, 0, 3, 2}, 0.5}}, o));
  EXPECT_NO_THROW(annotate_image(Image{}, {{"cat", {0, 0, 3, 2}, 0.5}}, o));
  // Unusual labels: UTF-8, invalid UTF-8.
  EXPECT_NO_THROW(annotate_image(img, {{"caf\xc3\xa9 \xe7\x8c\xab", {10, 40, 90, 70}}, {"\xff\xc3", {5, 5, 30, 30}}}, o));
}

TEST(AnnotateErrors, FontMaskAndImageProblems) {
  using test::error_of;
  const Image img = gradient(40, 30);
  AnnotateOptions o;
  o.font_path = "/nonexistent/dir/NoSuchFont.ttf";
  EXPECT_NE(error_of([&] { annotate_image(img, {{"cat", {1, 1, 20, 20}}}, o); }).find("/nonexistent/dir/NoSuchFont.ttf"),
            std::string::npos);
  // A confidence alone also makes a tag.
  EXPECT_NE(error_of([&] { annotate_image(img, {{"", {1, 1, 20, 20}, 0.5}}, o); }).find("NoSuchFont.ttf"),
            std::string::npos);
  // Not a font.
  test::TempDir dir;
  o.font_path = dir.file("not_a_font.ttf");
  write_png(o.font_path, img);
  EXPECT_NE(error_of([&] { annotate_image(img, {{"cat", {1, 1, 20, 20}}}, o); }).find("not_a_font.ttf"),
            std::string::npos);

  BinaryMask wrong;
  wrong.width = 10;
  wrong.height = 10;
  wrong.data.assign(100, 1);
  EXPECT_NE(error_of([&] { annotate_image(img, {{"", {1, 1, 20, 20}, NAN, &wrong}}); }).find("10x10"), std::string::npos);
  BinaryMask short_data;
  short_data.width = 40;
  short_data.height = 30;
  short_data.data.assign(7, 1);
  EXPECT_NE(error_of([&] { annotate_image(img, {{"", {1, 1, 20, 20}, NAN, &short_data}}); }).find("holds 7"),
            std::string::npos);
  Image bad = img;
  bad.rgb.resize(10);
  EXPECT_NE(error_of([&] { annotate_image(bad, {}); }).find("holds 10 bytes"), std::string::npos);
}

TEST(AnnotatePng, WriteAndReadBack) {
  test::TempDir dir;
  const Image img = gradient(37, 23);
  write_png(dir.file("a.png"), img);
  const Image back = load_image(dir.file("a.png"));
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.rgb, img.rgb);

  BinaryMask m;
  m.width = 5;
  m.height = 4;
  m.data = {0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
  write_mask_png(dir.file("m.png"), m);
  const Image mb = load_image(dir.file("m.png"));
  ASSERT_EQ(mb.width, 5);
  ASSERT_EQ(mb.height, 4);
  for (size_t i = 0; i < m.data.size(); ++i)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(mb.rgb[i * 3 + size_t(k)], m.data[i] ? 255 : 0);
}

TEST(AnnotatePng, WriteErrorsNameThePath) {
  using test::error_of;
  const Image img = gradient(8, 8);
  EXPECT_NE(error_of([&] { write_png("/nonexistent/dir/out.png", img); }).find("/nonexistent/dir/out.png"),
            std::string::npos);
  BinaryMask m;
  m.width = 2;
  m.height = 2;
  m.data.assign(4, 1);
  EXPECT_NE(error_of([&] { write_mask_png("/nonexistent/dir/mask.png", m); }).find("/nonexistent/dir/mask.png"),
            std::string::npos);
  EXPECT_NE(error_of([&] { write_png("/tmp/pg_empty.png", Image{}); }).find("/tmp/pg_empty.png"), std::string::npos);
  Image bad = img;
  bad.rgb.resize(5);
  EXPECT_NE(error_of([&] { write_png("/tmp/pg_bad.png", bad); }).find("/tmp/pg_bad.png"), std::string::npos);
}

// The demo for people: chelsea.png with two boxes and a mask. Written to a temp dir, and also to
// $PG_ANNOTATE_DEMO when that is set (e.g. PG_ANNOTATE_DEMO=/tmp/annotate_demo.png).
TEST(AnnotateDemo, Chelsea) {
  const Image img = load_image(test::fixture("photos/chelsea.png"));
  BinaryMask eye;
  eye.width = img.width;
  eye.height = img.height;
  eye.data.assign(size_t(img.width) * size_t(img.height), 0);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const double dx = (x - 171.0) / 34.0, dy = (y - 115.0) / 29.0;
      if (dx * dx + dy * dy <= 1.0) eye.data[size_t(y) * size_t(img.width) + size_t(x)] = 1;
    }
  const std::vector<Annotation> objects = {
      {"cat", {0, 0, 400, 300}, 0.97},
      {"left eye", {135, 84, 208, 147}, 0.88, &eye},
  };
  const Image out = annotate_image(img, objects);
  EXPECT_EQ(out.width, img.width);
  EXPECT_EQ(out.height, img.height);
  EXPECT_NE(px(out, 171, 115), px(img, 171, 115));  // inside the mask
  EXPECT_EQ(px(out, 300, 150), px(img, 300, 150));  // inside the cat box, away from everything
  test::TempDir dir;
  write_png(dir.file("demo.png"), out);
  EXPECT_EQ(load_image(dir.file("demo.png")).rgb, out.rgb);
  if (const char* path = std::getenv("PG_ANNOTATE_DEMO")) write_png(path, out);
}

}  // namespace
}  // namespace pg
