// Linear probes of a vision tower (paligemma probe): the probe learns what is linearly there and
// nothing that is not; on the bundled pt model it reads colour, which that model has learnt
// (docs/WORLD_MODEL.md), far above chance; bad options are named.
#include "paligemma/vision_probe.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace {

// Features [n, 6] from a sin-fract hash; labels either a linear function of them or noise.
std::vector<float> features(int n, int dim) {
  std::vector<float> x(size_t(n) * dim);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(12.9898 * double(i) + 78.233) * 43.7);
  for (float& v : x) v = v - std::floor(v) - 0.5f;
  return x;
}

TEST(LinearProbe, FindsALinearRuleAndNoRuleInNoise) {
  const int n = 600, dim = 6, classes = 3;
  const std::vector<float> x = features(n, dim);
  std::vector<int> linear(n), noise(n);
  for (int i = 0; i < n; ++i) {
    const float* r = x.data() + size_t(i) * dim;
    const double s = 3 * r[0] - 2 * r[3] + 1.5 * r[5];
    linear[i] = s < -0.4 ? 0 : (s < 0.4 ? 1 : 2);
    noise[i] = static_cast<int>((uint64_t(i) * 2654435761u >> 7) % classes);
  }
  const auto [train, test] = pg::linear_probe(x, dim, linear, classes, 400, 400, 0.05, 1e-3);
  EXPECT_GT(train, 0.9);
  EXPECT_GT(test, 0.85);
  const auto [ntrain, ntest] = pg::linear_probe(x, dim, noise, classes, 400, 400, 0.05, 1e-3);
  EXPECT_LT(ntest, 0.5) << "noise labels cannot be predicted (chance 1/3); train " << ntrain;
  EXPECT_NE(pg::test::error_of([&] { pg::linear_probe(x, dim, linear, classes, n, 10, 0.05, 0); }).find("inconsistent"),
            std::string::npos);
  std::vector<int> bad = linear;
  bad[3] = 7;
  EXPECT_NE(pg::test::error_of([&] { pg::linear_probe(x, dim, bad, classes, 400, 10, 0.05, 0); }).find("label 7"),
            std::string::npos);
}

TEST(VisionProbe, BundledPtModelReadsColour) {
  const auto model = pg::Model::load(pg::test::fixture("../../models/paligemma-world-pt"));
  pg::VisionProbeOptions o;
  o.train_images = 240;
  o.test_images = 120;
  const std::vector<pg::ProbeResult> r = pg::probe_vision_tower(*model, o);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].attribute, "shape");
  EXPECT_EQ(r[0].classes, 6);
  EXPECT_EQ(r[1].attribute, "colour");
  EXPECT_EQ(r[1].classes, 8);
  EXPECT_EQ(r[2].classes, 3);
  EXPECT_EQ(r[3].attribute, "column");
  EXPECT_EQ(r[4].attribute, "row");
  for (size_t i = 0; i < r.size(); ++i) {
    const pg::ProbeResult& p = r[i];
    EXPECT_GE(p.test_accuracy, 0.0);
    EXPECT_LE(p.test_accuracy, 1.0);
    EXPECT_GT(p.chance, 1.0 / p.classes - 0.1);
    // Shape, colour and size are drawn uniformly; objects sit more often in the middle third.
    EXPECT_LT(p.chance, i < 3 ? 1.0 / p.classes + 0.15 : 0.7) << p.attribute;
  }
  EXPECT_GT(r[1].test_accuracy, 0.8) << "colour, chance " << r[1].chance;
  o.train_images = 1;
  EXPECT_NE(pg::test::error_of([&] { pg::probe_vision_tower(*model, o); }).find("at least 2"), std::string::npos);
}

TEST(VisionProbe, Cli) {
  const std::string base =
      pg::test::cli_path() + " probe --model " + pg::test::fixture("../../models/paligemma-world-pt");
  const auto ok = pg::test::run_command(base + " --train-images 60 --test-images 40 --steps 50 --json 2>/dev/null");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("\"attribute\": \"colour\""), std::string::npos) << ok.output;
  const auto bad = pg::test::run_command(base + " --shapes circle,blob 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("blob"), std::string::npos) << bad.output;
}

}  // namespace
