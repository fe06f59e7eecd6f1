#pragma once
// The trainable mask VQ-VAE: big_vision's architecture exactly as MaskCodec reads it
// (include/paligemma/mask_codec.h, src/seg/mask_codec.cpp), its parameters under the
// vae-oid.npz names in PyTorch layout, and one function computing the VQ-VAE loss and every
// gradient (van den Oord et al. 2017, "Neural Discrete Representation Learning"):
//   z_e = encoder(2 (m - 0.5)),  k = argmin_j |z_e - e_j|^2 (per cell of the 4x4 grid),
//   z_q = e_k,  decoder input z_e + sg(z_q - z_e) (straight-through: the decoder's input
//   gradient reaches the encoder unchanged),
//   loss = mean (decoder - 2 (m - 0.5))^2               reconstruction
//        + mean (sg(z_e) - e_k)^2                       codebook (moves the codes)
//        + beta mean (z_e - sg(e_k))^2                  commitment (keeps the encoder near them)
// Widths: the decoder is C -> ResBlocks(C) -> ConvT C, C/2, C/4, C/8 (the published model has
// C = 128); the encoder mirrors it (4x4 stride-2 convs to C/8, C/4, C/2, C), then two
// ResBlocks(C) (3x3, 3x3, 1x1, 'SAME') and a 1x1 conv to D.
#include <cstdint>
#include <string>
#include <vector>

#include "train/parameters.h"

namespace pg::seg {

struct MaskVaeShape {
  int channels = 64;   // C, a multiple of 8
  int code_dim = 32;   // D
  int codebook = 128;  // K
};

// pg::Error naming the bad width (channels not a positive multiple of 8, code_dim < 1,
// codebook < 2).
void validate_mask_vae_shape(const MaskVaeShape& shape);

// Every parameter name (vae-oid.npz keys) with its shape, encoder first, in a fixed order.
std::vector<std::pair<std::string, std::vector<int64_t>>> mask_vae_parameter_shapes(const MaskVaeShape& shape);

// He-normal convolutions (std sqrt(2 / fan_in)), zero biases, the last conv of each residual
// block scaled by 0.1 (the blocks start near the identity), a unit-normal codebook (the
// trainer overwrites it from the first batch's encodings). Deterministic in `seed`.
train::Parameters init_mask_vae(const MaskVaeShape& shape, uint64_t seed);

// The shape of a parameter set (from the codebook, decoder.0 and encoder.10); pg::Error naming
// the first missing or mis-shaped tensor when it is not exactly this architecture.
MaskVaeShape mask_vae_shape_of(const train::Parameters& params);

struct MaskVaeLossConfig {
  double beta = 0.25;            // commitment weight (van den Oord et al.; UViM's default too)
  bool straight_through = true;  // false: the decoder's gradient stops at z_q (a broken VQ-VAE,
                                 // kept so the gradient test can show that it notices)
};

struct MaskVaeLoss {
  double total = 0, reconstruction = 0, codebook = 0, commitment = 0;  // parts unweighted
  std::vector<int> codes;                                              // [batch, 16], row-major 4x4 cells
  std::vector<float> encodings;                                        // z_e, [batch, 16, D]
  std::vector<float> logits;                                           // decoder output, [batch, 64, 64]
};

// masks: [batch, 64, 64] in [0, 1]. With `grads` (the same names as params, e.g. from
// zeros_like), ADDS d total / d parameter into it.
MaskVaeLoss mask_vae_loss(const train::Parameters& params, const float* masks, int batch,
                          const MaskVaeLossConfig& config, train::Parameters* grads);

// The 16 codes of each mask (nearest codebook entry, lowest index on ties) and the decoder's
// logits of codes, batched: what MaskCodec::encode / decode_logits compute.
std::vector<int> mask_vae_encode(const train::Parameters& params, const float* masks, int batch,
                                 std::vector<float>* encodings = nullptr);
std::vector<float> mask_vae_decode(const train::Parameters& params, const int* codes, int batch);

}  // namespace pg::seg
