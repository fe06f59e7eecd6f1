#pragma once
// Fine-tuning PaliGemma in C++ (the library API behind `paligemma finetune`): what trains,
// the loss, the optimizer and schedule, the data and the outputs of a run. The pieces are in
// src/train/ (docs/ARCHITECTURE.md, "Data flow of one training step").
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "paligemma/tensor.h"

namespace pg::train {

enum class OptimizerKind { Sgd, Adam };

// How weight decay enters the update (lr_t = lr * schedule factor s_t):
//   BigVision (optax chain: scale_by_adam -> scale(lr) -> add_decayed_weights(wd) ->
//              scale_by_schedule(s) -> scale(-1)): p -= s_t * (lr * update + wd * p)
//              (the decay is not multiplied by lr: big_vision's wd is a per-step factor);
//   Torch     (torch.optim.AdamW): p = p * (1 - lr_t * wd) - lr_t * update.
enum class DecayStyle { BigVision, Torch };
// Which tensors decay: Matrices (every tensor with >= 2 dimensions) or BigVisionKernels
// (what big_vision's default wd_mults ".*/kernel$" selects in PaliGemma: the SigLIP and
// projector weight matrices and the patch conv; no Gemma tensor, whose big_vision names
// are not "kernel").
enum class DecayMask { Matrices, BigVisionKernels };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Adam;
  double lr = 1e-5;
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;  // Adam (eps outside the square root, eps_root 0)
  double weight_decay = 0.0;
  DecayStyle decay_style = DecayStyle::BigVision;
  DecayMask decay_mask = DecayMask::Matrices;
  double clip_norm = 0.0;  // global-norm clipping (optax.clip_by_global_norm); 0: off
};

enum class ScheduleKind { Constant, Cosine, Rsqrt };

enum class LossReduction {
  PerExample,  // big_vision: mean over each example's suffix tokens, then mean over examples
  Token,       // transformers: mean over every suffix token of the batch
};

struct LossOptions {
  LossReduction reduction = LossReduction::PerExample;
  float label_smoothing = 0.0f;
  bool final_logit_softcap = true;  // Gemma 2's cap on the logits (transformers applies it)
  bool hf_sliding_window = false;   // Gemma 2 sliding window on HF's sliding layers
  // Gradient accumulation: the loss (and gradients) of this call are multiplied by `scale`
  // (PerExample: the micro-batch's share of the examples), and with Token reduction divided
  // by `total_tokens` (the whole batch's target tokens) when > 0 instead of this call's.
  double scale = 1.0;
  int total_tokens = 0;
  // Dropout on the decoder's attention and MLP outputs before each residual add, every value
  // independently (big_vision's Gemma `dropout`, "LLM dropout" in its PaliGemma configs);
  // the masks come from dropout_seed and the example's index, so a step can be replayed.
  float dropout = 0.0f;
  uint64_t dropout_seed = 0;
  // PEFT's lora_dropout: each adapter sees its input through its own dropout mask (the
  // frozen path sees it unchanged); masks from dropout_seed as above. The trainer sets it
  // from LoraConfig::dropout for training steps, never for evaluation.
  float lora_dropout = 0.0f;
  // Gradient checkpointing: the forward keeps only each layer's input and the backward
  // recomputes one layer at a time from it (about one more forward of compute; the saved
  // activations shrink from every layer's to one layer's). The gradients are the same.
  bool checkpoint_layers = false;
  // The images of consecutive examples share one vision-tower pass while the activations it
  // keeps stay within this many bytes (at least one example per pass): a small tower's
  // products get more rows; So400m (~0.7 GB per image at 224 px) runs an example at a time.
  // Results do not depend on it beyond float summation order.
  size_t vision_group_bytes = size_t{256} << 20;
};

struct LoraConfig {
  int rank = 8;
  double alpha = 16;
  double dropout = 0.0;  // on each adapter's input during training (PEFT's lora_dropout)
  // Module names (the last path component) that get adapters, in the decoder.
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  bool vision = false;  // also the SigLIP tower's q/k/v/out_proj, fc1, fc2 (targets "out_proj", "fc1", "fc2")
  uint64_t seed = 0;
  double scale() const { return alpha / rank; }
};

enum class TrainableSet {
  Full,           // every tensor
  FrozenVision,   // all but the SigLIP tower (the projector trains)
  AttentionOnly,  // the decoder's attention projections (q, k, v, o) only
  Lora            // LoRA adapters on a frozen base (TrainerConfig::lora)
};

struct TrainerConfig {
  std::string model_dir, train_path, val_path, out_dir;
  int epochs = 1;
  int64_t max_steps = 0;  // > 0: stop after this many optimizer steps (else: epochs)
  int batch_size = 4;     // examples per optimizer step
  int grad_accum = 1;     // micro-batches per step (each batch_size / grad_accum examples)
  int max_tokens = 0;     // sequence length limit (0: none); see dataset.h for truncation
  bool shuffle = true;
  uint64_t seed = 0;
  bool skip_bad_lines = false;
  ResizeFilter resize = ResizeFilter::PilBicubic;
  TrainableSet trainable = TrainableSet::Full;
  LoraConfig lora;             // with TrainableSet::Lora
  bool export_merged = false;  // LoRA: also write the merged checkpoint to out_dir/model
  OptimizerConfig optimizer;
  ScheduleKind schedule = ScheduleKind::Cosine;
  double warmup_fraction = 0.05;
  LossOptions loss;
  int64_t eval_every = 0;  // steps between validation passes (0: only at the end)
  // Task metrics at each validation pass: greedy answers for the first N validation records,
  // scored per task (caption CIDEr, VQA accuracy, detection mAP@0.5, segmentation mIoU, OCR
  // exact match; include/paligemma/eval.h). 0: validation loss only; < 0: every record.
  int eval_metrics = 0;
  int eval_max_new_tokens = 64;
  std::string vae_path;  // VQ-VAE (vae-oid.npz layout) for segment answers; empty: box IoU
  int64_t save_every = 0;  // steps between training-state saves (0: only at the end)
  DType export_dtype = DType::BF16;
  bool resume = false;     // continue from out_dir/state if present
  int64_t stop_after = 0;  // > 0: save the state and stop after this many steps of this call
  bool quiet = false;
};

struct StepRecord {
  int64_t step = 0;
  int epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0;
  int tokens = 0;
  double val_loss = -1;  // < 0: not evaluated at this step
  // Task metrics when evaluated at this step (TrainerConfig::eval_metrics), by "task.metric":
  // "caption.cider", "answer.vqa_accuracy", "detect.map50", "segment.miou", "ocr.exact_match",
  // and "<task>.exact_match" / "<task>.examples" for every task present.
  std::map<std::string, double> val_metrics;
};

struct TrainSummary {
  int64_t steps = 0;      // the step reached (== the planned total unless stopped early)
  bool finished = false;  // the planned total was reached (and the model exported)
  std::vector<StepRecord> history;
  double final_val_loss = -1;
  // Before the first step of a fresh run with validation data (the log's step 0).
  double initial_val_loss = -1;
  std::map<std::string, double> initial_val_metrics;
  int train_examples = 0, skipped_lines = 0, truncated = 0, dropped = 0;
};

// Runs the whole fine-tune. Progress on stderr unless quiet. Writes into out_dir:
// metrics.jsonl, loss.svg, state/ (resume), and model/ (the exported checkpoint), or for
// LoRA adapter/ (PEFT format; model/ too with export_merged).
TrainSummary run_finetune(const TrainerConfig& config);

}  // namespace pg::train
