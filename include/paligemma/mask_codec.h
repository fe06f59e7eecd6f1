#pragma once
// PaliGemma's segmentation mask codec: big_vision's VQ-VAE (weights `vae-oid.npz`, a PyTorch
// state dict saved with np.savez). 16 `<seg>` codes (a 4x4 grid, row-major) <-> a 64x64 mask.
//
// Matched against google-research/big_vision (commit 5f95305c):
//   decoder: big_vision/evaluators/proj/paligemma/transfers/segmentation.py
//            (_get_params, _quantized_values_from_codebook_indices, ResBlock, Decoder,
//            reconstruct_masks; the evaluator resizes with PIL BILINEAR, thresholds > 0)
//   encoder: big_vision/pp/proj/paligemma/segmentation.py
//            (refcoco_mask2str, encode_to_codebook_indices, _conv_tf, _resblock_tf,
//            _get_codebook_indices)
// Every channel count, the codebook size K and dimension D are read from the file.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pg {

// A half-open pixel box [y1, y2) x [x1, x2), big_vision's order (y before x). It may extend
// past the image; only the part inside is used / written.
struct PixelBox {
  int y1 = 0, x1 = 0, y2 = 0, x2 = 0;
};

class MaskCodec {
 public:
  // Throws pg::Error naming the file and key: missing file, not a zip, missing key, wrong
  // shape or dtype. The encoder weights (encoder.*) are optional: without any of them only
  // decode works; with some but not all, load fails.
  static MaskCodec load(const std::string& npz_path);

  int codebook_size() const { return K_; }  // K (128 in vae-oid.npz)
  int code_dim() const { return D_; }       // D
  bool has_encoder() const { return !enc_down_.empty(); }

  // The decoder's 64x64 logits, row-major (the [64, 64, 1] output of big_vision's Decoder),
  // roughly in [-1, 1]; > 0 is inside. Throws pg::Error for a code outside [0, K).
  std::vector<float> decode_logits(const std::array<int, 16>& codes) const;

  // The 16 codes of a 64x64 row-major mask in [0, 1] (fed as 2 * (m - 0.5)): the nearest
  // codebook entry (squared L2, lowest index on ties) for each cell of the 4x4 grid.
  std::array<int, 16> encode(const std::vector<float>& mask64) const;

  struct Conv {  // PyTorch layout: weight (out, in, kh, kw) for Conv2d, (in, out, kh, kw) for
                 // ConvTranspose2d; stored as given.
    std::string key;
    int out = 0, in = 0, kh = 0, kw = 0;
    std::vector<float> w, b;
  };
  struct ResBlock {
    Conv c0, c1, c2;  // 3x3, 3x3, 1x1
  };

 private:
  std::string path_;
  int K_ = 0, D_ = 0;
  std::vector<float> embedding_;  // K x D
  // Decoder.
  Conv dec_in_;                    // decoder.0, 1x1 D -> C
  std::vector<ResBlock> dec_res_;  // decoder.2, decoder.3
  std::vector<Conv> dec_up_;       // decoder.4/6/8/10, ConvTranspose2d 4x4 stride 2
  Conv dec_out_;                   // decoder.12, 1x1 -> 1
  // Encoder.
  std::vector<Conv> enc_down_;     // encoder.0/2/4/6, stride 2 'SAME'
  std::vector<ResBlock> enc_res_;  // encoder.8, encoder.9
  Conv enc_out_;                   // encoder.10, -> D
};

// The decoded mask in a full-resolution width x height image (row-major, 1 inside, 0
// outside): the 64x64 logits resized bilinearly to the box size (as PIL's Image.resize
// BILINEAR on a float image, antialiased when shrinking), thresholded > 0, pasted at the box.
std::vector<uint8_t> mask_in_box(const std::vector<float>& logits64, const PixelBox& box, int width,
                                 int height);

// The encoder's input from a full-resolution mask (width x height, row-major, 0..255 with 255
// inside, as big_vision's uint8 masks): cropped to the box (clipped to the image), resized to
// 64x64 as tf.image.resize(bilinear, antialias=True), divided by 255 -> [0, 1].
std::vector<float> mask_to_64(const uint8_t* mask, int width, int height, const PixelBox& box);

// Antialiased bilinear (triangle kernel widened by the shrink factor, half-pixel centres,
// weights renormalised at the borders: TensorFlow's ScaleAndTranslate / PIL's BILINEAR) of a
// single-channel float image.
std::vector<float> resize_bilinear_aa(const float* src, int sw, int sh, int dw, int dh);

}  // namespace pg
