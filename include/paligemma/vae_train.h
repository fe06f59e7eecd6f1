#pragma once
// Training big_vision's mask VQ-VAE (the codec of include/paligemma/mask_codec.h) from scratch
// on the synthetic world's instance masks (include/paligemma/world.h), so that segmentation
// needs no downloaded vae-oid.npz. The result is an npz in the vae-oid key layout that
// MaskCodec::load reads (`paligemma world --tasks segment --vae FILE`, segmentation decoding).
//
// Data: scene i of `seed` (make_world_scene, no text), each object's mask cropped to its box
// and resized to 64x64 with mask_to_64, exactly as the segment target builder does; the batch
// takes the objects of consecutive scenes. The held-out masks are the first val_masks objects of
// `val_seed` (another seed: independent scenes).
// Loss: the VQ-VAE loss of van den Oord et al. (src/seg/mask_vae.h): MSE of the decoder's
// output against the encoder's input scaling 2 (m - 0.5) (the published decoder's outputs are
// "roughly in [-1, 1]", thresholded at 0: a regression onto +-1, not unbounded BCE logits),
// codebook + beta * commitment, straight-through gradients. The codebook is learned by Adam on
// the codebook loss, initialised from the first batch's encodings, and codes unused for
// restart_every steps are restarted on random encodings of the current batch (their Adam
// moments reset), so the K codes stay in use.
// Optimiser: Adam (b1 0.9, b2 0.999), linear warmup, then constant or cosine.
// Resuming: the state file (out_path + ".state.npz") holds the weights, Adam moments, the
// step, the random stream, the data position and the code-usage window (written every
// save_every steps and at the end). Resuming and training on to `steps` is bit-identical to an
// uninterrupted run when the learning-rate factor of every step is the same: an interrupted
// run resumed with its own --steps, or (a longer run than first asked for) a constant schedule
// whose warmup ended before the first part did. With cosine, a new --steps stretches the
// decay from the resumed step on.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pg {

struct VaeTrainOptions {
  std::string out_path;  // the vae-oid-layout npz; the state goes to out_path + ".state.npz"
  int64_t steps = 3000;
  int batch_size = 32;
  double lr = 2e-3;
  int64_t warmup_steps = 100;
  bool cosine = true;  // false: constant after the warmup
  int channels = 32;   // C (multiple of 8): decoder C, C, C/2, C/4, C/8; encoder mirrored
  int code_dim = 32;   // D
  int codebook = 128;  // K (PaliGemma's <seg> tokens need 128)
  double beta = 0.25;  // commitment weight
  uint64_t seed = 0;   // world seed of the training masks, and of the weight init
  uint64_t val_seed = 1000003;
  int val_masks = 256;
  int world_size = 224;  // scene side in pixels (PaliGemma's input)
  int max_objects = 4;
  int64_t restart_every = 50;  // steps without use before a code is restarted; 0: never
  int64_t eval_every = 500;    // held-out IoU every this many steps (and at the end); 0: end only
  int64_t log_every = 50;
  int64_t save_every = 500;  // write the npz and the state every this many steps; 0: end only
  bool resume = false;       // continue from out_path + ".state.npz"
};

struct VaeTrainProgress {
  int64_t step = 0, total_steps = 0;
  double loss = 0, reconstruction = 0, codebook_loss = 0, commitment = 0;  // means since the last line
  int codes_used = 0;                                                      // distinct codes in the usage window
  double perplexity = 0;  // exp(entropy) of the code frequencies in the window
  int64_t restarted = 0;  // codes restarted so far
  double val_iou = -1;    // held-out mean IoU (-1: not evaluated at this step)
  double seconds = 0, eta_seconds = 0, seconds_per_step = 0;
};

struct VaeTrainSummary {
  int64_t steps = 0, start_step = 0;    // start_step > 0 when resumed
  double val_iou = 0;                   // held-out mean IoU of decode(encode(mask)) > 0 vs mask > 0.5
  double baseline_iou = 0;              // the same for "the whole box" (every logit > 0)
  int codes_used = 0;                   // distinct codes over the held-out masks
  double perplexity = 0;                // of the held-out codes
  double loss = 0, reconstruction = 0;  // of the last logged interval
  double seconds = 0, seconds_per_step = 0;
  std::string out_path, state_path;
  int channels = 0, code_dim = 0, codebook = 0;
};

// pg::Error naming the bad option (steps, batch size, lr, widths, codebook < 2, val_masks,
// world size, intervals, an empty output path).
void validate_vae_train_options(const VaeTrainOptions& options);

// Trains, writing out_path (and the state) at save_every steps and at the end. pg::Error for
// bad options, an unwritable output, or (resume) a missing state or one of another
// configuration. progress is called every log_every steps and at each evaluation.
VaeTrainSummary train_mask_vae(const VaeTrainOptions& options,
                               const std::function<void(const VaeTrainProgress&)>& progress = {});

// IoU of (logits64 > 0) with (mask64 > 0.5), both 64x64; 1 when both are empty.
double mask_reconstruction_iou(const float* logits64, const float* mask64);

// The held-out masks train_mask_vae evaluates on: the first `count` object masks of `seed`'s
// scenes, each [64 * 64] in [0, 1].
std::vector<std::vector<float>> world_masks64(uint64_t seed, int count, int world_size = 224, int max_objects = 4);

}  // namespace pg
