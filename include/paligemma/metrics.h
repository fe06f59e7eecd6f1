#pragma once
// Metrics for detection / referring expressions / segmentation, as the PaliGemma papers report them.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "paligemma/structured.h"

namespace pg {

// Intersection over union of two boxes with continuous coordinates (area = w * h, no "+1",
// as pycocotools). 0 when the union is empty (two degenerate boxes).
double box_iou(const Box& a, const Box& b);

// ---- COCO-style detection mAP ----

struct GroundTruthBox {
  std::string image_id;
  std::string label;
  Box box;
};

struct DetectionBox {
  std::string image_id;
  std::string label;
  Box box;
  double score = 0;  // confidence; higher ranks first
};

struct DetectionMapOptions {
  int max_detections = 100;  // per image and class, highest scores kept (pycocotools maxDets[-1])
};

struct DetectionMap {
  double map = -1;    // mean AP over IoU 0.50:0.05:0.95 and over classes with ground truth
  double map50 = -1;  // mean AP at IoU 0.50
  double map75 = -1;  // mean AP at IoU 0.75
  std::map<std::string, double> ap;    // per class with ground truth, averaged over the 10 IoUs
  std::map<std::string, double> ap50;  // per class with ground truth, at IoU 0.50
};

// pycocotools COCOeval(iouType="bbox"), area range "all", no crowd / ignore flags:
//  - IoU thresholds linspace(0.5, 0.95, 10); recall thresholds linspace(0, 1, 101).
//  - Per image and class, detections sorted by score (stable: ties keep input order), the top
//    max_detections kept. Each detection in turn takes the unmatched ground truth of the same
//    image and class with the highest IoU >= the threshold (on equal IoU the later one, as
//    pycocotools does); otherwise it is a false positive.
//  - Per class, all its detections across images (images ordered by id, then rank) sorted by
//    score, stable; precision = TP / (TP + FP), recall = TP / #GT; precision made
//    non-increasing from the end; AP = mean over the 101 recall thresholds r of the precision
//    at the first rank whose recall >= r (0 when recall never reaches r).
//  - Classes with no ground truth are left out (their detections do not count anywhere);
//    a class with ground truth and no detections has AP 0. With no ground truth at all, the
//    means are -1 (pycocotools' "absent" value).
DetectionMap detection_map(const std::vector<GroundTruthBox>& ground_truth, const std::vector<DetectionBox>& detections,
                           const DetectionMapOptions& options = {});

// ---- masks ----

struct BinaryMask {
  int width = 0, height = 0;
  std::vector<uint8_t> data;  // row-major, nonzero = inside
};

// |a & b| / |a | b|; 0 when both are empty. Throws pg::Error if the sizes differ or a mask's
// data does not hold width * height values.
double mask_iou(const BinaryMask& a, const BinaryMask& b);

// ---- RefCOCO-style scores ----

struct ReferringScore {
  double miou = 0;        // mean of the per-example IoU (missing prediction -> 0)
  double acc50 = 0;       // fraction of examples with IoU >= 0.5 (Acc@0.5)
  double cumulative_iou = 0;  // masks only: sum of intersections / sum of unions (oIoU); boxes: 0
  size_t examples = 0;
  size_t missing = 0;     // predictions absent (malformed / no object in the answer)
};

// big_vision's RefCOCO evaluation: one prediction per example, nullopt (the answer had no
// well-formed object) scores IoU 0. Throws pg::Error if the two lists differ in length.
// No examples: all zeros.
ReferringScore referring_box_score(const std::vector<std::optional<Box>>& predictions,
                                   const std::vector<Box>& ground_truth);
ReferringScore referring_mask_score(const std::vector<std::optional<BinaryMask>>& predictions,
                                    const std::vector<BinaryMask>& ground_truth);

// The prediction of one RefCOCO answer: the box of its first well-formed object, or nullopt.
std::optional<Box> referring_box_from_answer(const std::string& answer, int image_width, int image_height,
                                             Bins bins = Bins::BigVision);

}  // namespace pg
