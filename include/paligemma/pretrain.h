#pragma once
// Contrastive pretraining of PaliGemma's vision tower with SigLIP's sigmoid loss (Zhai et al.
// 2023), step one of training a PaliGemma from scratch (the library API behind
// `paligemma pretrain-vision`).
//
// The model is transformers' SiglipModel: the image side is the checkpoint's SigLIP vision
// tower (embeddings, encoder layers, post_layernorm) with a SiglipMultiheadAttentionPoolingHead
// (probe, nn.MultiheadAttention, layernorm, MLP, output row 0); the text side a SiglipTextModel
// (token + position embedding, pre-LN encoder layers, final_layer_norm, the LAST token's hidden
// state, `head` Linear to the image embedding width). Both towers run the same encoder layer
// code as PaliGemma's training. The loss is the sigmoid loss of every image against every
// caption of the batch with a learned temperature t' (logit_scale, init log 10) and bias b
// (logit_bias, init -10).
//
// Captions are tokenized with the checkpoint's PaliGemma tokenizer (the text vocabulary is its
// vocabulary) and get <eos> appended, so the pooled last token is always the same token, the
// role SigLIP's fixed-length padding plays in transformers (there the last token is a pad
// token); no padding is added: each caption runs at its own length with full attention.
//
// Outputs: out_dir itself is the complete PaliGemma checkpoint (the input's config.json,
// tokenizer.model and every tensor, the vision tower's replaced by the trained ones, stored in
// the input tower's dtype), loadable by `paligemma run` / `finetune`; out_dir/siglip/ holds what PaliGemma drops
// (pooling head, text tower, logit_scale, logit_bias) under SiglipModel's names, with siglip/config.json; state/ is the
// resume state; metrics.jsonl the log.
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/finetune.h"
#include "paligemma/image.h"

namespace pg::train {

// The text tower's sizes; 0 takes the vision tower's value (the text head maps to the vision
// width, the shared embedding space, in any case).
struct TextTowerConfig {
  int layers = 2;
  int hidden = 0;
  int heads = 0;
  int intermediate = 0;
  int max_positions = 64;  // captions longer than this (with <eos>) are cut, keeping <eos>
};

struct PretrainConfig {
  std::string model_dir, train_path, val_path, out_dir;
  int64_t steps = 100;
  int batch_size = 16;  // >= 2: the loss needs negatives
  int64_t warmup_steps = 0;
  ScheduleKind schedule = ScheduleKind::Cosine;
  OptimizerConfig optimizer = {OptimizerKind::Adam, 1e-4, 0.9, 0.999, 1e-8, 0.0, DecayStyle::BigVision,
                               DecayMask::Matrices, 1.0};
  TextTowerConfig text;
  double t_prime_init = 2.302585092994046;  // log 10
  double bias_init = -10.0;
  uint64_t seed = 0;  // the new tensors' initialisation and the data order
  ResizeFilter resize = ResizeFilter::PilBicubic;
  bool skip_bad_lines = false;
  bool resume = false;     // continue from out_dir/state if present
  int64_t stop_after = 0;  // > 0: save the state and stop after this many steps of this call
  int64_t save_every = 0;  // steps between state saves (0: only at the end)
  bool quiet = false;
};

struct PretrainStep {
  int64_t step = 0;
  double loss = 0, t = 0, b = 0, lr = 0, grad_norm = 0, examples_per_s = 0;
};

struct PretrainSummary {
  int64_t steps = 0;      // the step reached
  bool finished = false;  // the planned total was reached (and the checkpoint written)
  std::vector<PretrainStep> history;
  int train_examples = 0, val_examples = 0;
  // Held-out image -> text retrieval over the whole validation set as one batch: the share of
  // images whose most similar caption is their own (a caption with the same text counts: the
  // data may repeat captions). < 0: not measured. chance = the expected share of a random pick.
  double initial_val_accuracy = -1, final_val_accuracy = -1, val_chance = -1;
};

// Runs the whole pretraining. Progress on stderr unless quiet. Throws pg::Error for bad input.
PretrainSummary run_pretrain_vision(const PretrainConfig& config);

}  // namespace pg::train
