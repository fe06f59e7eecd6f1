// detection_map against pycocotools' COCOeval on a seeded random case
// (tools/golden/make_map_golden.py -> tests/fixtures/metrics/map_case.json).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "paligemma/metrics.h"
#include "test_util.h"

namespace pg {
namespace {

Box box_of(const nlohmann::json& b) { return Box{b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()}; }

TEST(MetricsCoco, DetectionMapMatchesPycocotools) {
  std::ifstream in(test::fixture("metrics/map_case.json"));
  auto j = nlohmann::json::parse(in);
  std::vector<GroundTruthBox> gts;
  std::vector<DetectionBox> dets;
  for (const auto& g : j["ground_truth"])
    gts.push_back({std::to_string(g["image"].get<int>()), g["label"].get<std::string>(), box_of(g["box"])});
  for (const auto& d : j["detections"])
    dets.push_back({std::to_string(d["image"].get<int>()), d["label"].get<std::string>(), box_of(d["box"]),
                    d["score"].get<double>()});
  DetectionMap m = detection_map(gts, dets);
  EXPECT_NEAR(m.map, j["map"].get<double>(), 1e-9);
  EXPECT_NEAR(m.map50, j["map50"].get<double>(), 1e-9);
  EXPECT_NEAR(m.map75, j["map75"].get<double>(), 1e-9);
}

}  // namespace
}  // namespace pg
