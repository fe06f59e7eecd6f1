// Box / mask IoU, COCO-style mAP and RefCOCO scores on cases computed by hand.
#include <gtest/gtest.h>

#include "paligemma/error.h"
#include "paligemma/metrics.h"
#include "test_util.h"

namespace pg {
namespace {

TEST(Metrics, BoxIou) {
  // Two 10x10 boxes overlapping in a 5x5 square: 25 / (100 + 100 - 25) = 1/7.
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {5, 5, 15, 15}), 25.0 / 175.0);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {0, 0, 10, 10}), 1.0);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {0, 0, 5, 10}), 0.5);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {10, 0, 20, 10}), 0.0);  // touching edges
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 1, 1}, {3, 3, 4, 4}), 0.0);
  EXPECT_DOUBLE_EQ(box_iou({2, 2, 2, 2}, {2, 2, 2, 2}), 0.0);  // degenerate: empty union
  // Non-square image pixels: 640x427 full image vs its left half -> 0.5.
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 640, 427}, {0, 0, 320, 427}), 0.5);
}

TEST(Metrics, MapOneTruePositiveThenOneFalsePositive) {
  // Two ground truths; rank 1 an exact hit, rank 2 a miss. Recall reaches 0.5 with precision 1,
  // so recall thresholds 0.00 .. 0.50 (51 of 101) score 1, the rest 0: AP = 51/101 at every IoU.
  std::vector<GroundTruthBox> gt = {{"img", "cat", {0, 0, 10, 10}}, {"img", "cat", {50, 50, 60, 60}}};
  std::vector<DetectionBox> dt = {{"img", "cat", {0, 0, 10, 10}, 0.9}, {"img", "cat", {100, 100, 110, 110}, 0.8}};
  DetectionMap m = detection_map(gt, dt);
  EXPECT_DOUBLE_EQ(m.map50, 51.0 / 101.0);
  EXPECT_DOUBLE_EQ(m.map, 51.0 / 101.0);
  EXPECT_DOUBLE_EQ(m.ap.at("cat"), 51.0 / 101.0);
}

TEST(Metrics, MapFalsePositiveRankedFirst) {
  // One ground truth; rank 1 a miss, rank 2 a hit: precision [0, 0.5] -> made [0.5, 0.5];
  // recall [0, 1]: every threshold scores 0.5. AP = 0.5.
  std::vector<GroundTruthBox> gt = {{"a", "dog", {0, 0, 10, 10}}};
  std::vector<DetectionBox> dt = {{"a", "dog", {20, 20, 30, 30}, 0.9}, {"a", "dog", {0, 0, 10, 10}, 0.8}};
  DetectionMap m = detection_map(gt, dt);
  EXPECT_DOUBLE_EQ(m.map50, 0.5);
  EXPECT_DOUBLE_EQ(m.map, 0.5);
  EXPECT_DOUBLE_EQ(m.map75, 0.5);
}

TEST(Metrics, MapAcrossIouThresholds) {
  // IoU 0.72 = (10 x 7.2) / 100: a hit at thresholds 0.50 .. 0.70 (5 of 10), a miss above.
  std::vector<GroundTruthBox> gt = {{"a", "cat", {0, 0, 10, 10}}};
  std::vector<DetectionBox> dt = {{"a", "cat", {0, 0, 10, 7.2}, 0.5}};
  DetectionMap m = detection_map(gt, dt);
  EXPECT_DOUBLE_EQ(m.map50, 1.0);
  EXPECT_DOUBLE_EQ(m.map75, 0.0);
  EXPECT_DOUBLE_EQ(m.map, 0.5);
}

TEST(Metrics, MapGreedyMatchingByScore) {
  // One ground truth. The higher-scored detection (IoU 0.62) takes it at IoU <= 0.60 (3 thresholds:
  // AP 1, the other detection a FP after it); above, only the IoU-1 detection matches, at rank 2 (AP 0.5).
  // mAP = (3 * 1 + 7 * 0.5) / 10 = 0.65.
  std::vector<GroundTruthBox> gt = {{"a", "cat", {0, 0, 10, 10}}};
  std::vector<DetectionBox> dt = {{"a", "cat", {0, 0, 10, 6.2}, 0.9}, {"a", "cat", {0, 0, 10, 10}, 0.8}};
  DetectionMap m = detection_map(gt, dt);
  EXPECT_DOUBLE_EQ(m.map50, 1.0);
  EXPECT_NEAR(m.map, 0.65, 1e-12);
}

TEST(Metrics, MapClassesImagesAndEmptyCases) {
  // cat: found exactly (AP 1); dog: ground truth, no detections (AP 0); bird: detections only (left out).
  std::vector<GroundTruthBox> gt = {{"1", "cat", {0, 0, 10, 10}}, {"2", "dog", {0, 0, 10, 10}}};
  std::vector<DetectionBox> dt = {{"1", "cat", {0, 0, 10, 10}, 0.3}, {"1", "bird", {0, 0, 10, 10}, 0.99},
                                  {"2", "cat", {0, 0, 10, 10}, 0.1}};  // a cat where image 2 has none: FP at rank 2
  DetectionMap m = detection_map(gt, dt);
  EXPECT_EQ(m.ap.size(), 2u);
  EXPECT_DOUBLE_EQ(m.ap.at("cat"), 1.0);  // the FP comes after recall 1
  EXPECT_DOUBLE_EQ(m.ap.at("dog"), 0.0);
  EXPECT_DOUBLE_EQ(m.map50, 0.5);
  EXPECT_DOUBLE_EQ(m.map, 0.5);
  // A detection in the wrong image never matches.
  DetectionMap w = detection_map({{"1", "cat", {0, 0, 10, 10}}}, {{"2", "cat", {0, 0, 10, 10}, 1.0}});
  EXPECT_DOUBLE_EQ(w.map50, 0.0);
  // max_detections per image and class: only the top-scored (a miss) is kept.
  DetectionMapOptions one;
  one.max_detections = 1;
  DetectionMap k = detection_map({{"1", "cat", {0, 0, 10, 10}}},
                                 {{"1", "cat", {50, 50, 60, 60}, 0.9}, {"1", "cat", {0, 0, 10, 10}, 0.5}}, one);
  EXPECT_DOUBLE_EQ(k.map50, 0.0);
  // Nothing at all / detections without ground truth: pycocotools' -1.
  EXPECT_DOUBLE_EQ(detection_map({}, {}).map, -1.0);
  EXPECT_DOUBLE_EQ(detection_map({}, {{"1", "cat", {0, 0, 1, 1}, 1.0}}).map50, -1.0);
  // Ground truth, no detections: 0.
  EXPECT_DOUBLE_EQ(detection_map(gt, {}).map, 0.0);
}

TEST(Metrics, MaskIou) {
  // 4x4: top half vs left half -> intersection 4, union 12.
  BinaryMask top{4, 4, std::vector<uint8_t>(16, 0)}, left{4, 4, std::vector<uint8_t>(16, 0)};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      top.data[y * 4 + x] = y < 2;
      left.data[y * 4 + x] = x < 2 ? 255 : 0;
    }
  EXPECT_DOUBLE_EQ(mask_iou(top, left), 4.0 / 12.0);
  EXPECT_DOUBLE_EQ(mask_iou(top, top), 1.0);
  BinaryMask empty{4, 4, std::vector<uint8_t>(16, 0)};
  EXPECT_DOUBLE_EQ(mask_iou(empty, empty), 0.0);
  EXPECT_DOUBLE_EQ(mask_iou(empty, top), 0.0);
  BinaryMask other{2, 8, std::vector<uint8_t>(16, 1)};
  EXPECT_NE(test::error_of([&] { mask_iou(top, other); }), "<no error>");
  BinaryMask bad{4, 4, std::vector<uint8_t>(15, 1)};
  EXPECT_NE(test::error_of([&] { mask_iou(top, bad); }), "<no error>");
}

TEST(Metrics, ReferringBoxScore) {
  // Exact (1), overlapping (1/7), missing (0): mIoU = (1 + 1/7) / 3, Acc@0.5 = 1/3.
  std::vector<std::optional<Box>> pred = {Box{0, 0, 10, 10}, Box{5, 5, 15, 15}, std::nullopt};
  std::vector<Box> gt = {{0, 0, 10, 10}, {0, 0, 10, 10}, {0, 0, 10, 10}};
  ReferringScore s = referring_box_score(pred, gt);
  EXPECT_DOUBLE_EQ(s.miou, (1.0 + 1.0 / 7.0) / 3.0);
  EXPECT_DOUBLE_EQ(s.acc50, 1.0 / 3.0);
  EXPECT_EQ(s.examples, 3u);
  EXPECT_EQ(s.missing, 1u);
  EXPECT_DOUBLE_EQ(referring_box_score({}, {}).miou, 0.0);
  EXPECT_NE(test::error_of([&] { referring_box_score(pred, {}); }), "<no error>");
}

TEST(Metrics, ReferringBoxFromAnswerOnANonSquareImage) {
  // big_vision's RefCOCO bins (/1023) on 640x427; the ground truth the left half of the image.
  auto full = referring_box_from_answer("<loc0000><loc0000><loc1023><loc1023>", 640, 427);
  ASSERT_TRUE(full.has_value());
  EXPECT_DOUBLE_EQ(full->x1, 640.0);
  EXPECT_DOUBLE_EQ(full->y1, 427.0);
  EXPECT_FALSE(referring_box_from_answer("<loc0000><loc1023> oops", 640, 427).has_value());
  EXPECT_FALSE(referring_box_from_answer("", 640, 427).has_value());
  std::vector<std::optional<Box>> pred = {full, referring_box_from_answer("garbage", 640, 427)};
  ReferringScore s = referring_box_score(pred, {Box{0, 0, 320, 427}, Box{0, 0, 320, 427}});
  EXPECT_DOUBLE_EQ(s.miou, 0.25);  // (0.5 + 0) / 2
  EXPECT_DOUBLE_EQ(s.acc50, 0.5);
}

TEST(Metrics, ReferringMaskScore) {
  BinaryMask top{4, 4, std::vector<uint8_t>(16, 0)}, left{4, 4, std::vector<uint8_t>(16, 0)};
  for (int i = 0; i < 16; ++i) {
    top.data[i] = i < 8;
    left.data[i] = (i % 4) < 2;
  }
  // (1/3, 1, missing 0): mIoU 4/9; oIoU (4 + 8 + 0) / (12 + 8 + 8) = 12/28.
  ReferringScore s = referring_mask_score({top, top, std::nullopt}, {left, top, left});
  EXPECT_DOUBLE_EQ(s.miou, (1.0 / 3.0 + 1.0) / 3.0);
  EXPECT_DOUBLE_EQ(s.cumulative_iou, 12.0 / 28.0);
  EXPECT_DOUBLE_EQ(s.acc50, 1.0 / 3.0);
  EXPECT_EQ(s.missing, 1u);
}

}  // namespace
}  // namespace pg
