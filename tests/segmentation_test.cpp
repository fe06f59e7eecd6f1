// Segmentation end to end on the VQ-VAE goldens (tools/golden/make_vae_golden.py): a mask
// becomes 16 codes and a target string; parsing that string and decoding its codes gives the
// reference's round-trip mask back.
#include <gtest/gtest.h>

#include "paligemma/npy.h"
#include "paligemma/segmentation.h"
#include "test_util.h"

namespace pg {
namespace {

std::string vae(const std::string& f) { return test::fixture("vae/" + f); }

TEST(Segmentation, MaskToTargetToMaskRoundTrip) {
  MaskCodec codec = MaskCodec::load(vae("vae_deflated.npz"));
  NpyArray full = read_npy(vae("full_mask.npy"));  // [H, W] uint8, 255 inside
  const int H = static_cast<int>(full.shape[0]), W = static_cast<int>(full.shape[1]);
  std::vector<int64_t> b = read_npy(vae("full_box.npy")).as_i64();  // y1 x1 y2 x2, pixels
  BinaryMask mask{W, H, std::vector<uint8_t>(full.bytes.begin(), full.bytes.end())};
  Box box{static_cast<double>(b[1]), static_cast<double>(b[0]), static_cast<double>(b[3]),
          static_cast<double>(b[2])};

  std::array<int, 16> codes = encode_mask(codec, mask, box);
  std::vector<int64_t> ref_codes = read_npy(vae("full_codes.npy")).as_i64();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(codes[i], ref_codes[i]) << "code " << i;

  std::string target = segmentation_target({"blob", box}, codes, W, H);
  ParsedAnswer parsed = parse_answer(target, W, H);
  ASSERT_EQ(parsed.objects.size(), 1u) << target;
  ASSERT_TRUE(parsed.objects[0].seg.has_value());
  EXPECT_EQ(*parsed.objects[0].seg, codes);
  EXPECT_EQ(parsed.objects[0].label, "blob");

  auto masks = decode_masks(parsed, codec, W, H);
  ASSERT_EQ(masks.size(), 1u);
  ASSERT_TRUE(masks[0].has_value());
  NpyArray want = read_npy(vae("full_roundtrip.npy"));  // the reference's decoded mask, 0/1
  BinaryMask ref{W, H, std::vector<uint8_t>(want.bytes.begin(), want.bytes.end())};
  EXPECT_EQ(mask_iou(*masks[0], ref), 1.0) << "decoded mask differs from the reference's round trip";
  const double ref_iou = read_npy(vae("full_iou.npy")).as_f32()[0];
  EXPECT_GE(mask_iou(*masks[0], mask), ref_iou - 1e-6);
}

TEST(Segmentation, DetectionsHaveNoMask) {
  MaskCodec codec = MaskCodec::load(vae("vae_stored.npz"));
  ParsedAnswer parsed = parse_answer("<loc0000><loc0000><loc0512><loc0512> cat", 100, 50);
  auto masks = decode_masks(parsed, codec, 100, 50);
  ASSERT_EQ(masks.size(), 1u);
  EXPECT_FALSE(masks[0].has_value());
}

TEST(Segmentation, PixelBoxRoundsAndKeepsOnePixel) {
  PixelBox p = pixel_box(Box{10.4, 3.6, 10.45, 3.61});
  EXPECT_EQ(p.x1, 10);
  EXPECT_EQ(p.y1, 4);
  EXPECT_EQ(p.x2, 11);
  EXPECT_EQ(p.y2, 5);
}

}  // namespace
}  // namespace pg
