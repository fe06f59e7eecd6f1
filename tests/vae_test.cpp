// The segmentation mask codec against tools/golden/make_vae_golden.py: an independent PyTorch
// implementation of big_vision's VQ-VAE (random weights in the vae-oid.npz layout), PIL for the
// box resize and torch's antialiased bilinear for the 64x64 crop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/mask_codec.h"
#include "paligemma/npy.h"
#include "test_util.h"

using pg::test::error_of;

namespace {

std::string vae(const std::string& name) { return pg::test::fixture("vae/" + name); }
pg::NpyArray npy(const std::string& name) { return pg::read_npy(vae(name)); }

std::array<int, 16> row16(const std::vector<int64_t>& v, size_t r) {
  std::array<int, 16> out{};
  for (int i = 0; i < 16; ++i) out[i] = static_cast<int>(v.at(r * 16 + i));
  return out;
}

pg::PixelBox box_of(const std::string& name) {
  const auto b = npy(name).as_i64();
  return pg::PixelBox{static_cast<int>(b[0]), static_cast<int>(b[1]), static_cast<int>(b[2]), static_cast<int>(b[3])};
}

double iou(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t inter = 0, uni = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    inter += (a[i] && b[i]);
    uni += (a[i] || b[i]);
  }
  return uni ? static_cast<double>(inter) / uni : 1.0;
}

class VaeFiles : public ::testing::TestWithParam<const char*> {};

TEST_P(VaeFiles, DecoderMatchesReference) {
  const pg::MaskCodec codec = pg::MaskCodec::load(vae(GetParam()));
  EXPECT_EQ(codec.codebook_size(), 128);
  EXPECT_EQ(codec.code_dim(), 16);
  EXPECT_TRUE(codec.has_encoder());
  const pg::NpyArray codes = npy("dec_codes.npy");
  const std::vector<int64_t> c = codes.as_i64();
  const std::vector<float> want = npy("dec_logits.npy").as_f32();
  ASSERT_EQ(want.size(), static_cast<size_t>(codes.shape[0]) * 4096);
  for (int64_t r = 0; r < codes.shape[0]; ++r) {
    const std::vector<float> got = codec.decode_logits(row16(c, r));
    ASSERT_EQ(got.size(), 4096u);
    double max_err = 0;
    for (size_t i = 0; i < 4096; ++i) max_err = std::max(max_err, std::abs(double(got[i]) - want[r * 4096 + i]));
    EXPECT_LT(max_err, 1e-4) << "case " << r;
  }
}

TEST_P(VaeFiles, EncoderMatchesReference) {
  const pg::MaskCodec codec = pg::MaskCodec::load(vae(GetParam()));
  const pg::NpyArray masks = npy("enc_masks.npy");
  const std::vector<float> m = masks.as_f32();
  const std::vector<int64_t> want = npy("enc_codes.npy").as_i64();
  for (int64_t r = 0; r < masks.shape[0]; ++r) {
    const std::vector<float> one(m.begin() + r * 4096, m.begin() + (r + 1) * 4096);
    EXPECT_EQ(codec.encode(one), row16(want, r)) << "mask " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Vae, VaeFiles, ::testing::Values("vae_stored.npz", "vae_deflated.npz"));

TEST(Vae, FullResolutionRoundTrip) {
  const pg::MaskCodec codec = pg::MaskCodec::load(vae("vae_deflated.npz"));
  const pg::NpyArray full = npy("full_mask.npy");
  const int H = static_cast<int>(full.shape[0]), W = static_cast<int>(full.shape[1]);
  const pg::PixelBox box = box_of("full_box.npy");

  const std::vector<float> m64 = pg::mask_to_64(full.bytes.data(), W, H, box);
  const std::vector<float> want64 = npy("full_mask64.npy").as_f32();
  ASSERT_EQ(m64.size(), 4096u);
  double max_err = 0;
  for (size_t i = 0; i < 4096; ++i) max_err = std::max(max_err, std::abs(double(m64[i]) - want64[i]));
  EXPECT_LT(max_err, 1e-5);

  const std::array<int, 16> codes = codec.encode(m64);
  EXPECT_EQ(codes, row16(npy("full_codes.npy").as_i64(), 0));
  const std::vector<float> logits = codec.decode_logits(codes);
  const std::vector<float> want_logits = npy("full_logits.npy").as_f32();
  max_err = 0;
  for (size_t i = 0; i < 4096; ++i) max_err = std::max(max_err, std::abs(double(logits[i]) - want_logits[i]));
  EXPECT_LT(max_err, 1e-4);

  const std::vector<uint8_t> rt = pg::mask_in_box(logits, box, W, H);
  const pg::NpyArray want_rt = npy("full_roundtrip.npy");
  EXPECT_EQ(rt, want_rt.bytes);
  std::vector<uint8_t> gt(full.bytes.size());
  for (size_t i = 0; i < gt.size(); ++i) gt[i] = full.bytes[i] > 0;
  const double ref_iou = npy("full_iou.npy").as_f32()[0];
  EXPECT_GE(iou(gt, rt), ref_iou - 1e-6);
}

TEST(Vae, MaskInBoxMatchesPil) {
  const std::vector<float> logits = npy("box_logits.npy").as_f32();
  const pg::NpyArray full = npy("full_mask.npy");
  const int H = static_cast<int>(full.shape[0]), W = static_cast<int>(full.shape[1]);
  for (const char* name : {"small", "large"}) {
    const std::vector<uint8_t> got = pg::mask_in_box(logits, box_of(std::string("box_") + name + ".npy"), W, H);
    const pg::NpyArray want = npy(std::string("inbox_") + name + ".npy");
    size_t diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff += got[i] != want.bytes[i];
    EXPECT_EQ(diff, 0u) << name;
  }
}

TEST(Vae, BadInputs) {
  const std::string missing = vae("nope.npz");
  EXPECT_EQ(error_of([&] { pg::MaskCodec::load(missing); }), "cannot open " + missing + ": No such file or directory");
  std::string e = error_of([&] { pg::MaskCodec::load(vae("not_a_zip.npz")); });
  EXPECT_EQ(e.rfind(vae("not_a_zip.npz") + " is not a .npz file", 0), 0u) << e;
  EXPECT_EQ(error_of([&] { pg::MaskCodec::load(vae("bad_missing.npz")); }),
            vae("bad_missing.npz") + " has no array 'decoder.0.weight'");
  EXPECT_EQ(error_of([&] { pg::MaskCodec::load(vae("bad_shape.npz")); }),
            vae("bad_shape.npz") + ": 'decoder.0.weight' has 17 -> 24 channels and a 1x1 kernel, expected 16 -> any "
                                   "channels and 1x1");
  EXPECT_EQ(error_of([&] { pg::MaskCodec::load(vae("bad_emb_rank.npz")); }),
            vae("bad_emb_rank.npz") + ": '_vq_vae._embedding' has shape [2048], expected (K, D) with K, D > 0");
  EXPECT_EQ(error_of([&] { pg::MaskCodec::load(vae("bad_dtype.npz")); }),
            vae("bad_dtype.npz") + ": array '_vq_vae._embedding' has dtype i4, expected a floating-point dtype (f4)");
  e = error_of([&] { pg::MaskCodec::load(vae("bad_member.npz")); });
  EXPECT_NE(e.find("bad_member.npz:x.npy is not a .npy file"), std::string::npos) << e;

  const pg::MaskCodec codec = pg::MaskCodec::load(vae("vae_stored.npz"));
  std::array<int, 16> codes{};
  codes[5] = 128;
  EXPECT_EQ(error_of([&] { codec.decode_logits(codes); }),
            "mask decoder (" + vae("vae_stored.npz") + "): code 128 at position 5 is outside [0, 128)");
  codes[5] = -1;
  EXPECT_NE(error_of([&] { codec.decode_logits(codes); }).find("code -1 at position 5"), std::string::npos);
  EXPECT_EQ(error_of([&] { codec.encode(std::vector<float>(100)); }),
            "mask encoder: expected a 64x64 = 4096 mask, got 100 values");
  std::vector<float> nan_mask(4096, 0.0f);
  nan_mask[7] = std::nanf("");
  EXPECT_EQ(error_of([&] { codec.encode(nan_mask); }), "mask encoder: mask value at index 7 is not finite");
  EXPECT_EQ(error_of([&] { pg::mask_in_box(std::vector<float>(10), {0, 0, 5, 5}, 10, 10); }),
            "mask_in_box: expected 64x64 = 4096 logits, got 10");
  EXPECT_EQ(error_of([&] { pg::mask_in_box(std::vector<float>(4096), {5, 0, 5, 5}, 10, 10); }),
            "mask_in_box: empty box (y1 5, x1 0, y2 5, x2 5)");
  EXPECT_EQ(error_of([&] { pg::mask_in_box(std::vector<float>(4096), {0, 0, 5, 5}, 0, 10); }),
            "mask_in_box: image size 0x10 is not positive");
  std::vector<uint8_t> m(100, 255);
  EXPECT_EQ(error_of([&] { pg::mask_to_64(m.data(), 10, 10, {20, 0, 30, 5}); }),
            "mask_to_64 (box clipped to the image): empty box (y1 10, x1 0, y2 10, x2 5)");
}

TEST(Vae, Shapes) {
  // A uniform mask resizes to a uniform 64x64; a box larger than 64 shrinks with antialiasing.
  std::vector<uint8_t> m(200 * 150, 255);
  const std::vector<float> m64 = pg::mask_to_64(m.data(), 200, 150, {0, 0, 150, 200});
  for (float v : m64) EXPECT_FLOAT_EQ(v, 1.0f);
  const std::vector<uint8_t> inside = pg::mask_in_box(std::vector<float>(4096, 0.5f), {-10, -10, 20, 30}, 40, 25);
  for (int y = 0; y < 25; ++y)
    for (int x = 0; x < 40; ++x) EXPECT_EQ(inside[y * 40 + x], (y < 20 && x < 30) ? 1 : 0);
}

}  // namespace
