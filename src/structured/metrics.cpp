// Box / mask IoU, COCO-style mAP and RefCOCO-style scores (see include/paligemma/metrics.h).
#include "paligemma/metrics.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "paligemma/error.h"

namespace pg {

double box_iou(const Box& a, const Box& b) {
  const double iw = std::min(a.x1, b.x1) - std::max(a.x0, b.x0);
  const double ih = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
  const double inter = (iw > 0 && ih > 0) ? iw * ih : 0.0;
  const double uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

namespace {

// numpy.linspace(start, stop, num): start + i * step, the last value exactly stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> v(num);
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) v[i] = start + i * step;
  v[num - 1] = stop;
  return v;
}

struct Scored {
  double score;
  bool matched[10];
};

}  // namespace

DetectionMap detection_map(const std::vector<GroundTruthBox>& ground_truth, const std::vector<DetectionBox>& detections,
                           const DetectionMapOptions& options) {
  const std::vector<double> iou_thr = linspace(0.5, 0.95, 10);
  const std::vector<double> rec_thr = linspace(0.0, 1.0, 101);
  constexpr int T = 10;

  // class -> image -> indices
  std::map<std::string, std::map<std::string, std::vector<size_t>>> gts, dts;
  for (size_t i = 0; i < ground_truth.size(); ++i) gts[ground_truth[i].label][ground_truth[i].image_id].push_back(i);
  for (size_t i = 0; i < detections.size(); ++i) dts[detections[i].label][detections[i].image_id].push_back(i);

  DetectionMap out;
  double sum_all = 0, sum50 = 0, sum75 = 0;
  size_t classes = 0;
  for (const auto& [label, gt_by_image] : gts) {
    size_t num_gt = 0;
    std::vector<Scored> scored;
    std::set<std::string> images;
    for (const auto& [img, v] : gt_by_image) images.insert(img);
    auto dit = dts.find(label);
    if (dit != dts.end())
      for (const auto& [img, v] : dit->second) images.insert(img);
    for (const std::string& img : images) {  // images in id order, as pycocotools' imgIds
      std::vector<size_t> g, d;
      if (auto it = gt_by_image.find(img); it != gt_by_image.end()) g = it->second;
      if (dit != dts.end())
        if (auto it = dit->second.find(img); it != dit->second.end()) d = it->second;
      num_gt += g.size();
      std::stable_sort(d.begin(), d.end(),
                       [&](size_t a, size_t b) { return detections[a].score > detections[b].score; });
      if (options.max_detections >= 0 && d.size() > static_cast<size_t>(options.max_detections))
        d.resize(options.max_detections);
      std::vector<std::vector<double>> ious(d.size(), std::vector<double>(g.size()));
      for (size_t i = 0; i < d.size(); ++i)
        for (size_t j = 0; j < g.size(); ++j) ious[i][j] = box_iou(detections[d[i]].box, ground_truth[g[j]].box);
      std::vector<Scored> rows(d.size());
      for (size_t i = 0; i < d.size(); ++i) rows[i].score = detections[d[i]].score;
      for (int t = 0; t < T; ++t) {
        std::vector<bool> taken(g.size(), false);
        for (size_t i = 0; i < d.size(); ++i) {
          double best = std::min(iou_thr[t], 1 - 1e-10);
          int m = -1;
          for (size_t j = 0; j < g.size(); ++j) {
            if (taken[j]) continue;
            if (ious[i][j] < best) continue;
            best = ious[i][j];
            m = static_cast<int>(j);
          }
          rows[i].matched[t] = m >= 0;
          if (m >= 0) taken[m] = true;
        }
      }
      scored.insert(scored.end(), rows.begin(), rows.end());
    }
    if (num_gt == 0) continue;  // cannot happen: the class came from the ground truth
    std::stable_sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
    double ap[T];
    for (int t = 0; t < T; ++t) {
      const size_t nd = scored.size();
      std::vector<double> rc(nd), pr(nd);
      double tp = 0, fp = 0;
      for (size_t i = 0; i < nd; ++i) {
        (scored[i].matched[t] ? tp : fp) += 1;
        rc[i] = tp / static_cast<double>(num_gt);
        pr[i] = tp / (tp + fp + 2.220446049250313e-16);  // np.spacing(1), as pycocotools
      }
      for (size_t i = nd; i-- > 1;)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
      double sum = 0;
      for (double r : rec_thr) {
        size_t k = std::lower_bound(rc.begin(), rc.end(), r) - rc.begin();  // searchsorted 'left'
        if (k < nd) sum += pr[k];
        else break;  // pycocotools stops at the first recall it never reaches: the rest are 0
      }
      ap[t] = sum / static_cast<double>(rec_thr.size());
    }
    const double mean = std::accumulate(ap, ap + T, 0.0) / T;
    out.ap[label] = mean;
    out.ap50[label] = ap[0];
    sum_all += mean;
    sum50 += ap[0];
    sum75 += ap[5];
    ++classes;
  }
  if (classes > 0) {
    out.map = sum_all / classes;
    out.map50 = sum50 / classes;
    out.map75 = sum75 / classes;
  }
  return out;
}

namespace {
void check_mask(const BinaryMask& m, const char* what) {
  if (m.width < 0 || m.height < 0 || m.data.size() != static_cast<size_t>(m.width) * static_cast<size_t>(m.height))
    throw Error(std::string(what) + " mask holds " + std::to_string(m.data.size()) + " values, not " +
                std::to_string(m.width) + "x" + std::to_string(m.height));
}

void mask_counts(const BinaryMask& a, const BinaryMask& b, double& inter, double& uni) {
  check_mask(a, "first");
  check_mask(b, "second");
  if (a.width != b.width || a.height != b.height)
    throw Error("mask sizes differ: " + std::to_string(a.width) + "x" + std::to_string(a.height) + " vs " +
                std::to_string(b.width) + "x" + std::to_string(b.height));
  size_t i_count = 0, u_count = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const bool x = a.data[i] != 0, y = b.data[i] != 0;
    i_count += x && y;
    u_count += x || y;
  }
  inter = static_cast<double>(i_count);
  uni = static_cast<double>(u_count);
}
}  // namespace

double mask_iou(const BinaryMask& a, const BinaryMask& b) {
  double inter, uni;
  mask_counts(a, b, inter, uni);
  return uni > 0 ? inter / uni : 0.0;
}

ReferringScore referring_box_score(const std::vector<std::optional<Box>>& predictions,
                                   const std::vector<Box>& ground_truth) {
  if (predictions.size() != ground_truth.size())
    throw Error(std::to_string(predictions.size()) + " predictions for " + std::to_string(ground_truth.size()) +
                " ground-truth boxes");
  ReferringScore s;
  s.examples = predictions.size();
  if (s.examples == 0) return s;
  double sum = 0;
  size_t hits = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    if (!predictions[i]) {
      ++s.missing;
      continue;
    }
    const double iou = box_iou(*predictions[i], ground_truth[i]);
    sum += iou;
    hits += iou >= 0.5;
  }
  s.miou = sum / s.examples;
  s.acc50 = static_cast<double>(hits) / s.examples;
  return s;
}

ReferringScore referring_mask_score(const std::vector<std::optional<BinaryMask>>& predictions,
                                    const std::vector<BinaryMask>& ground_truth) {
  if (predictions.size() != ground_truth.size())
    throw Error(std::to_string(predictions.size()) + " predictions for " + std::to_string(ground_truth.size()) +
                " ground-truth masks");
  ReferringScore s;
  s.examples = predictions.size();
  if (s.examples == 0) return s;
  double sum = 0, sum_inter = 0, sum_union = 0;
  size_t hits = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    double inter = 0, uni = 0;
    if (!predictions[i]) {
      ++s.missing;
      check_mask(ground_truth[i], "ground-truth");
      for (uint8_t v : ground_truth[i].data) uni += v != 0;
    } else {
      mask_counts(*predictions[i], ground_truth[i], inter, uni);
    }
    const double iou = uni > 0 ? inter / uni : 0.0;
    sum += iou;
    hits += iou >= 0.5;
    sum_inter += inter;
    sum_union += uni;
  }
  s.miou = sum / s.examples;
  s.acc50 = static_cast<double>(hits) / s.examples;
  s.cumulative_iou = sum_union > 0 ? sum_inter / sum_union : 0.0;
  return s;
}

std::optional<Box> referring_box_from_answer(const std::string& answer, int image_width, int image_height,
                                             Bins bins) {
  ParseOptions options;
  options.bins = bins;
  ParsedAnswer parsed = parse_answer(answer, image_width, image_height, options);
  if (parsed.objects.empty()) return std::nullopt;
  return parsed.objects.front().box;
}

}  // namespace pg
