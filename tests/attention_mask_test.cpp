// The mask rules of the decoder, checked on hand-worked cases: causal, prefix block,
// sliding window (transformers: sliding-window causal OR the bidirectional prompt block).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/attention.h"

namespace pg::kernels {
namespace {

std::pair<int, int> range(int q, int kv_len, AttentionMask m) {
  int a, b;
  attention_key_range(q, kv_len, m, &a, &b);
  return {a, b};
}

TEST(AttentionMask, BidirectionalSeesEverything) {
  AttentionMask m;
  m.causal = false;
  EXPECT_EQ(range(0, 7, m), std::make_pair(0, 7));
  EXPECT_EQ(range(6, 7, m), std::make_pair(0, 7));
}

TEST(AttentionMask, PrefixBlockIsBidirectionalSuffixIsCausal) {
  AttentionMask m;
  m.prefix_len = 5;
  EXPECT_EQ(range(0, 8, m), std::make_pair(0, 5));  // first prompt token sees the whole prompt
  EXPECT_EQ(range(4, 8, m), std::make_pair(0, 5));
  EXPECT_EQ(range(5, 8, m), std::make_pair(0, 6));  // generated tokens: causal
  EXPECT_EQ(range(7, 8, m), std::make_pair(0, 8));
  // While prefilling only part of the cache is written: never read past kv_len.
  EXPECT_EQ(range(2, 3, m), std::make_pair(0, 3));
}

TEST(AttentionMask, SlidingWindowExemptsThePromptBlock) {
  AttentionMask m;
  m.prefix_len = 6;
  m.window = 3;
  EXPECT_EQ(range(0, 10, m), std::make_pair(0, 6));  // prompt: whole block, window ignored
  EXPECT_EQ(range(5, 10, m), std::make_pair(0, 6));
  EXPECT_EQ(range(6, 10, m), std::make_pair(4, 7));  // q - k < 3: keys 4, 5, 6
  EXPECT_EQ(range(9, 10, m), std::make_pair(7, 10));
}

TEST(AttentionMask, PlainCausalWindow) {
  AttentionMask m;
  m.window = 2;
  EXPECT_EQ(range(0, 4, m), std::make_pair(0, 1));
  EXPECT_EQ(range(3, 4, m), std::make_pair(2, 4));
}

TEST(Attention, SoftmaxWeightsAndGqaHeadSharing) {
  // Two q heads share one kv head; keys chosen so the weights are easy to compute.
  AttentionShape s;
  s.num_heads = 2;
  s.num_kv_heads = 1;
  s.head_dim = 2;
  s.scale = 1.0f;
  AttentionMask m;
  m.causal = false;
  const float q[4] = {1, 0, 0, 1};         // head 0 looks at dim 0, head 1 at dim 1
  const float k[4] = {0, 0, std::log(3.0f), 0};  // key 1 scores log 3 for head 0
  const float v[4] = {1, 2, 3, 4};
  float out[4];
  attention(q, 1, 0, KVView{k, v, DType::F32, 2}, 2, s, m, out);
  // head 0: weights 1/4, 3/4 -> 0.25*[1,2] + 0.75*[3,4]
  EXPECT_NEAR(out[0], 2.5f, 1e-6);
  EXPECT_NEAR(out[1], 3.5f, 1e-6);
  // head 1: both scores 0 -> mean of values
  EXPECT_NEAR(out[2], 2.0f, 1e-6);
  EXPECT_NEAR(out[3], 3.0f, 1e-6);
}

TEST(Attention, SoftCapBoundsScores) {
  AttentionShape s;
  s.num_heads = 1;
  s.num_kv_heads = 1;
  s.head_dim = 1;
  s.scale = 1.0f;
  s.softcap = 1.0f;  // scores become tanh(score)
  AttentionMask m;
  m.causal = false;
  const float q[1] = {100};
  const float k[2] = {1, 0};
  const float v[2] = {1, 0};
  float out[1];
  attention(q, 1, 0, KVView{k, v, DType::F32, 2}, 2, s, m, out);
  const double e = std::exp(std::tanh(100.0));
  EXPECT_NEAR(out[0], e / (e + 1.0), 1e-6);
}

}  // namespace
}  // namespace pg::kernels
