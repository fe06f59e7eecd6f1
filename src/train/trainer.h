#pragma once
// The fine-tuning loop: data (JSONL), batches with gradient accumulation, the optimizer and
// schedule, validation loss at intervals, a metrics log (JSONL) and loss curve (SVG), the
// resumable training state, and the exported Hugging Face checkpoint.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "train/lora.h"
#include "train/optimizer.h"
#include "train/paligemma_grad.h"

namespace pg::train {

enum class TrainableSet {
  Full,          // every tensor
  FrozenVision,  // all but the SigLIP tower (the projector trains)
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
  int64_t save_every = 0;  // steps between training-state saves (0: only at the end)
  DType export_dtype = DType::BF16;
  bool resume = false;  // continue from out_dir/state if present
  int64_t stop_after = 0;  // > 0: save the state and stop after this many steps of this call
  bool quiet = false;
};

struct StepRecord {
  int64_t step = 0;
  int epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0;
  int tokens = 0;
  double val_loss = -1;  // < 0: not evaluated at this step
};

struct TrainSummary {
  int64_t steps = 0;     // the step reached (== the planned total unless stopped early)
  bool finished = false;  // the planned total was reached (and the model exported)
  std::vector<StepRecord> history;
  double final_val_loss = -1;
  int train_examples = 0, skipped_lines = 0, truncated = 0, dropped = 0;
};

// Runs the whole fine-tune. Progress on stderr unless quiet. Writes into out_dir:
// metrics.jsonl, loss.svg, state/ (resume), and model/ (the exported checkpoint), or for
// LoRA adapter/ (PEFT format; model/ too with export_merged).
TrainSummary run_finetune(const TrainerConfig& config);

// The names of the tensors a TrainableSet updates.
std::vector<std::string> trainable_names(const Parameters& params, TrainableSet set);

}  // namespace pg::train
