// Training targets: boxes -> answer text, and parse(build(x)) == x within one bin.
#include <gtest/gtest.h>

#include <random>

#include "paligemma/error.h"
#include "paligemma/structured.h"
#include "test_util.h"

namespace pg {
namespace {

TEST(Targets, BinConventions) {
  // Demo: floor(v * 1024) clamped to 1023.
  EXPECT_EQ(coordinate_to_bin(0.0, Bins::Demo), 0);
  EXPECT_EQ(coordinate_to_bin(0.5, Bins::Demo), 512);
  EXPECT_EQ(coordinate_to_bin(0.9999, Bins::Demo), 1023);
  EXPECT_EQ(coordinate_to_bin(1.0, Bins::Demo), 1023);
  EXPECT_EQ(coordinate_to_bin(1.5, Bins::Demo), 1023);
  EXPECT_EQ(coordinate_to_bin(-0.2, Bins::Demo), 0);
  // BigVision: round(v * 1023).
  EXPECT_EQ(coordinate_to_bin(0.0, Bins::BigVision), 0);
  EXPECT_EQ(coordinate_to_bin(1.0, Bins::BigVision), 1023);
  EXPECT_EQ(coordinate_to_bin(0.25, Bins::BigVision), 256);  // 255.75 -> 256
  EXPECT_EQ(coordinate_to_bin(100.4 / 1023, Bins::BigVision), 100);
  EXPECT_EQ(loc_token(7), "<loc0007>");
  EXPECT_EQ(seg_token(42), "<seg042>");
  EXPECT_NE(test::error_of([] { loc_token(1024); }), "<no error>");
  EXPECT_NE(test::error_of([] { seg_token(128); }), "<no error>");
}

TEST(Targets, DetectionTargetTextOnANonSquareImage) {
  // 640 x 427, Demo: x = 320 -> 0.5 -> 512; y = 213.5 -> 0.5 -> 512; x = 640 -> 1023.
  std::vector<LabeledBox> boxes = {{"cat", {0, 0, 320, 213.5}}, {"traffic light", {320, 213.5, 640, 427}}, {"", {0, 0, 64, 42.7}}};
  EXPECT_EQ(detection_target(boxes, 640, 427, Bins::Demo),
            "<loc0000><loc0000><loc0512><loc0512> cat ; <loc0512><loc0512><loc1023><loc1023> traffic light ; "
            "<loc0000><loc0000><loc0102><loc0102>");
  EXPECT_EQ(detection_target({}, 640, 427), "");
  EXPECT_NE(test::error_of([] { detection_target({{"a;b", {0, 0, 1, 1}}}, 10, 10); }), "<no error>");
  EXPECT_NE(test::error_of([] { detection_target({{"a", {5, 0, 1, 1}}}, 10, 10); }), "<no error>");
  EXPECT_NE(test::error_of([] { detection_target({{"a", {0, 0, 1, 1}}}, 0, 10); }), "<no error>");
}

TEST(Targets, SegmentationTargetText) {
  std::array<int, 16> codes{};
  for (int i = 0; i < 16; ++i) codes[i] = i * 8 + 7;  // 7 .. 127
  std::string s = segmentation_target({"dog", {0, 0, 640, 427}}, codes, 640, 427, Bins::BigVision);
  std::string expect = "<loc0000><loc0000><loc1023><loc1023>";
  for (int i = 0; i < 16; ++i) expect += seg_token(i * 8 + 7);
  EXPECT_EQ(s, expect + " dog");
  ParsedAnswer a = parse_answer(s, 640, 427, {Bins::BigVision, {}});
  ASSERT_EQ(a.objects.size(), 1u);
  ASSERT_TRUE(a.objects[0].seg.has_value());
  EXPECT_EQ(*a.objects[0].seg, codes);
  EXPECT_EQ(a.objects[0].label, "dog");
  codes[3] = 128;
  EXPECT_NE(test::error_of([&] { segmentation_target({"dog", {0, 0, 1, 1}}, codes, 10, 10); }), "<no error>");
}

TEST(Targets, RoundTripWithinOneBin) {
  std::mt19937 rng(1234);
  const int W = 640, H = 427;
  std::uniform_real_distribution<double> ux(0, W), uy(0, H);
  for (Bins bins : {Bins::Demo, Bins::BigVision}) {
    const double bin = bins == Bins::Demo ? 1024.0 : 1023.0;
    std::vector<LabeledBox> boxes;
    for (int i = 0; i < 200; ++i) {
      double a = ux(rng), b = ux(rng), c = uy(rng), d = uy(rng);
      boxes.push_back({"obj " + std::to_string(i), {std::min(a, b), std::min(c, d), std::max(a, b), std::max(c, d)}});
    }
    ParsedAnswer p = parse_answer(detection_target(boxes, W, H, bins), W, H, {bins, {}});
    ASSERT_EQ(p.objects.size(), boxes.size());
    EXPECT_TRUE(p.skipped.empty());
    for (size_t i = 0; i < boxes.size(); ++i) {
      const Box& x = boxes[i].box;
      const Box& y = p.objects[i].box;
      EXPECT_EQ(p.objects[i].label, boxes[i].label);
      EXPECT_LE(std::abs(y.x0 - x.x0), W / bin);
      EXPECT_LE(std::abs(y.x1 - x.x1), W / bin);
      EXPECT_LE(std::abs(y.y0 - x.y0), H / bin);
      EXPECT_LE(std::abs(y.y1 - x.y1), H / bin);
      if (bins == Bins::BigVision) {  // rounding: within half a bin
        EXPECT_LE(std::abs(y.x0 - x.x0), 0.5 * W / bin + 1e-9);
        EXPECT_LE(std::abs(y.y1 - x.y1), 0.5 * H / bin + 1e-9);
      } else {  // flooring: never above the input
        EXPECT_LE(y.x0, x.x0 + 1e-9);
        EXPECT_LE(y.y1, x.y1 + 1e-9);
      }
    }
    // And build(parse(text)) == text exactly.
    std::string text = detection_target(boxes, W, H, bins);
    std::vector<LabeledBox> back;
    for (const auto& o : p.objects) back.push_back({o.label, o.box});
    EXPECT_EQ(detection_target(back, W, H, bins), text);
  }
}

}  // namespace
}  // namespace pg
