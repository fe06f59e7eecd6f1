// The image feature cache (same image, several questions: encoded once) and the bf16 KV cache.
#include <gtest/gtest.h>

#include <cmath>

#include "paligemma/feature_cache.h"
#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/model.h"
#include "test_util.h"

namespace pg {
namespace {

std::vector<float> photo_pixels(const Model& m, const char* name) {
  return preprocess_image(load_image(test::fixture(std::string("photos/") + name)), m.config().vision.image_size,
                          ResizeFilter::PilBicubic);
}

TEST(ImageFeatureCache, HitsMissesAndEviction) {
  ImageFeatureCache cache(2);
  int computed = 0;
  auto encode = [&](const std::vector<float>& px) {
    ++computed;
    return std::vector<float>{px[0] * 2, static_cast<float>(px.size())};
  };
  std::vector<float> a(100, 1.0f), b(100, 1.0f), c(100, 3.0f);
  b[57] = 1.0001f;  // one value apart: a different image
  EXPECT_EQ((*cache.get_or_compute(a, encode))[0], 2.0f);
  EXPECT_EQ((*cache.get_or_compute(a, encode))[0], 2.0f);
  EXPECT_EQ(computed, 1);
  cache.get_or_compute(b, encode);
  EXPECT_EQ(computed, 2);
  cache.get_or_compute(a, encode);  // a becomes the most recent; b is the LRU
  cache.get_or_compute(c, encode);  // evicts b
  EXPECT_EQ(computed, 3);
  EXPECT_EQ(cache.size(), 2u);
  cache.get_or_compute(a, encode);
  EXPECT_EQ(computed, 3);
  cache.get_or_compute(b, encode);
  EXPECT_EQ(computed, 4);
  EXPECT_EQ(cache.hits(), 3u);
  EXPECT_EQ(cache.misses(), 4u);
  cache.set_capacity(0);
  cache.get_or_compute(a, encode);
  cache.get_or_compute(a, encode);
  EXPECT_EQ(computed, 6) << "capacity 0 disables caching";
}

TEST(ImageFeatureCache, SameImageSeveralQuestionsIsEncodedOnce) {
  auto model = Model::load(test::fixture("models/pg2_gqa_window"));
  auto px = photo_pixels(*model, "chelsea.png");
  std::vector<Request> reqs = {{{px}, "caption en"}, {{px}, "answer en what is this?"},
                               {{photo_pixels(*model, "rocket.jpg")}, "caption en"}};
  GenerationOptions o;
  o.max_new_tokens = 3;
  auto results = generate(*model, reqs, o);
  EXPECT_EQ(results[0].timings.images_encoded, 2);
  EXPECT_EQ(results[0].timings.images_from_cache, 1);
  // A second call asking about chelsea again encodes nothing, and answers as before.
  auto again = generate(*model, {reqs[1]}, o);
  EXPECT_EQ(again[0].timings.images_encoded, 0);
  EXPECT_EQ(again[0].timings.images_from_cache, 1);
  EXPECT_EQ(again[0].tokens, results[1].tokens);
  // And the cached features are the tower's.
  auto direct = model->encode_image(px.data());
  EXPECT_EQ(*model->encode_image_cached(px), direct);
}

TEST(ImageFeatureCache, WrongSizeIsAnError) {
  auto model = Model::load(test::fixture("models/pg2_gqa_window"));
  std::vector<float> px(10, 0.0f);
  EXPECT_THROW(model->encode_image_cached(px), Error);
}

TEST(KVCache, Bf16StorageHalvesMemoryAndStaysClose) {
  test::BackendGuard guard;
  set_precision(Precision::F32);
  ModelOptions f32, bf16;
  bf16.kv_cache = DType::BF16;
  auto a = Model::load(test::fixture("models/pg2_gqa_window"), f32);
  auto b = Model::load(test::fixture("models/pg2_gqa_window"), bf16);
  EXPECT_EQ(a->new_cache(64, 10).bytes(), 2 * b->new_cache(64, 10).bytes());
  Request req{{photo_pixels(*a, "chelsea.png")}, "caption en"};
  GenerationOptions o;
  o.max_new_tokens = 6;
  o.keep_step_logits = true;
  o.stop_at_eos = false;
  Result ra = generate(*a, {req}, o)[0], rb = generate(*b, {req}, o)[0];
  // bf16 keys/values (8 significant bits) move the logits by about half a percent of their range
  // on this model (measured 0.48%); a wrong layout or stride would move them by O(1).
  float diff = 0, mag = 0;
  const size_t n = std::min(ra.step_logits.size(), rb.step_logits.size());
  ASSERT_GT(n, 0u);
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(ra.step_logits[i] - rb.step_logits[i]));
    mag = std::max(mag, std::fabs(ra.step_logits[i]));
  }
  std::cout << "  bf16 KV cache: step logits max|diff| / max|logit| " << diff / mag << "\n";
  EXPECT_LE(diff / mag, 0.015f);
  EXPECT_GT(diff, 0.0f) << "the bf16 cache should actually round";
  ModelOptions bad;
  bad.kv_cache = DType::F16;
  EXPECT_THROW(Model::load(test::fixture("models/pg2_gqa_window"), bad), Error);
}

}  // namespace
}  // namespace pg
