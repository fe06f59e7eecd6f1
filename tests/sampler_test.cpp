// Token choice: argmax ties, log-probs, and sampling filters on distributions whose answer
// is known.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "generate/sampler.h"
#include "paligemma/generate.h"

namespace pg {
namespace {

TEST(Sampler, ArgmaxTakesTheFirstMaximum) {
  const float l[5] = {0, 3, 1, 3, 2};
  EXPECT_EQ(argmax(l, 5), 1);
}

TEST(Sampler, LogProbMatchesClosedForm) {
  const float l[3] = {0, std::log(2.0f), std::log(5.0f)};
  EXPECT_NEAR(log_prob(l, 3, 2), std::log(5.0 / 8.0), 1e-6);
}

TEST(Sampler, TopKOneIsGreedy) {
  const float l[4] = {0.1f, 2.0f, 1.9f, -1.0f};
  Rng rng(7);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(l, 4, 1.0f, 1, 1.0f, rng), 1);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  // probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps {0, 1}; 0.5 keeps {0}.
  const float l[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Rng rng(1);
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) seen[sample_token(l, 3, 1.0f, 0, 0.7f, rng)]++;
  EXPECT_EQ(seen.count(2), 0u);
  EXPECT_NEAR(seen[0] / 2000.0, 0.5 / 0.8, 0.04);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_token(l, 3, 1.0f, 0, 0.5f, rng), 0);
}

TEST(Sampler, FrequenciesFollowTheTemperedDistribution) {
  const float l[2] = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4 at T = 1; at T = 2: 1/(1+sqrt3)
  Rng rng(42);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += sample_token(l, 2, 2.0f, 0, 1.0f, rng);
  EXPECT_NEAR(ones / double(n), std::sqrt(3.0) / (1.0 + std::sqrt(3.0)), 0.015);
}

TEST(Sampler, SameSeedSameStream) {
  Rng a(123), b(123), c(124);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace pg
