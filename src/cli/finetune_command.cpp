// `paligemma finetune`: fine-tunes a checkpoint on JSONL data ({"image", "prefix", "suffix"})
// and writes a Hugging Face checkpoint, metrics.jsonl, loss.svg and a resumable state.
#include <cstdio>

#include "cli/commands.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"
#include "train/trainer.h"

namespace pg::cli {
namespace {

struct FinetuneArgs {
  train::TrainerConfig c;
  std::string optimizer = "adam", schedule = "cosine", trainable = "full", reduction = "example", decay = "bigvision",
              decay_mask = "matrices", export_dtype = "bf16", resize = "pil", sliding_window = "off";
  bool no_shuffle = false, no_final_softcap = false;
  int threads = 0;
};

template <typename T>
T pick(const std::string& flag, const std::string& value, std::initializer_list<std::pair<const char*, T>> choices) {
  std::string names;
  for (const auto& [name, v] : choices) {
    if (value == name) return v;
    names += std::string(names.empty() ? "" : ", ") + name;
  }
  throw Error(flag + " must be one of " + names + " (got \"" + value + "\")");
}

int finetune(FinetuneArgs& a) {
  using namespace train;
  set_threads(a.threads);
  TrainerConfig& c = a.c;
  c.optimizer.kind =
      pick<OptimizerKind>("--optimizer", a.optimizer, {{"adam", OptimizerKind::Adam}, {"sgd", OptimizerKind::Sgd}});
  c.schedule = pick<ScheduleKind>(
      "--schedule", a.schedule,
      {{"cosine", ScheduleKind::Cosine}, {"constant", ScheduleKind::Constant}, {"rsqrt", ScheduleKind::Rsqrt}});
  c.trainable = pick<TrainableSet>("--train-set", a.trainable,
                                   {{"full", TrainableSet::Full},
                                    {"frozen-vision", TrainableSet::FrozenVision},
                                    {"attention", TrainableSet::AttentionOnly},
                                    {"lora", TrainableSet::Lora}});
  c.loss.reduction = pick<LossReduction>("--loss-reduction", a.reduction,
                                         {{"example", LossReduction::PerExample}, {"token", LossReduction::Token}});
  c.optimizer.decay_style =
      pick<DecayStyle>("--wd-style", a.decay, {{"bigvision", DecayStyle::BigVision}, {"torch", DecayStyle::Torch}});
  c.optimizer.decay_mask = pick<DecayMask>(
      "--wd-mask", a.decay_mask, {{"matrices", DecayMask::Matrices}, {"bigvision", DecayMask::BigVisionKernels}});
  c.export_dtype = pick<DType>("--export-dtype", a.export_dtype, {{"bf16", DType::BF16}, {"f32", DType::F32}});
  c.resize = pick<ResizeFilter>("--resize", a.resize,
                                {{"pil", ResizeFilter::PilBicubic}, {"bigvision", ResizeFilter::BigVisionBilinear}});
  c.loss.hf_sliding_window = pick<bool>("--sliding-window", a.sliding_window, {{"off", false}, {"hf", true}});
  c.shuffle = !a.no_shuffle;
  c.lora.seed = c.seed;
  c.loss.final_logit_softcap = !a.no_final_softcap;
  if (c.loss.label_smoothing < 0 || c.loss.label_smoothing >= 1) throw Error("--label-smoothing must be in [0, 1)");
  if (c.warmup_fraction < 0 || c.warmup_fraction > 1) throw Error("--warmup must be in [0, 1]");
  if (c.loss.dropout < 0 || c.loss.dropout >= 1) throw Error("--dropout must be in [0, 1)");
  if (c.lora.dropout < 0 || c.lora.dropout >= 1) throw Error("--lora-dropout must be in [0, 1)");
  if (c.eval_max_new_tokens < 1) throw Error("--eval-max-new-tokens must be >= 1");
  const TrainSummary s = run_finetune(c);
  if (profile::enabled()) std::fprintf(stderr, "%s", profile::report().c_str());  // PG_PROFILE=1
  std::printf(
      "{\"steps\": %lld, \"final_loss\": %.6f, \"final_val_loss\": %s, \"examples\": %d, \"skipped_lines\": %d, "
      "\"truncated\": %d, \"dropped\": %d, \"output\": \"%s/%s\"}\n",
      (long long)s.steps, s.history.empty() ? 0.0 : s.history.back().loss,
      s.final_val_loss >= 0 ? std::to_string(s.final_val_loss).c_str() : "null", s.train_examples, s.skipped_lines,
      s.truncated, s.dropped, c.out_dir.c_str(), c.trainable == TrainableSet::Lora ? "adapter" : "model");
  return 0;
}

}  // namespace

Runner add_finetune_command(CLI::App& app) {
  auto a = std::make_shared<FinetuneArgs>();
  train::TrainerConfig& c = a->c;
  CLI::App* cmd = app.add_subcommand("finetune", "Fine-tune on JSONL data and write a Hugging Face checkpoint");
  cmd->add_option("--model", c.model_dir, "Hugging Face model directory to start from")->required();
  cmd->add_option("--train", c.train_path, "Training data: JSONL lines {\"image\", \"prefix\", \"suffix\"}")
      ->required();
  cmd->add_option("--val", c.val_path, "Validation data (same format): loss at --eval-every and at the end");
  cmd->add_option("--out", c.out_dir, "Output directory: model/, metrics.jsonl, loss.svg, state/")->required();
  cmd->add_option("--epochs", c.epochs, "Passes over the training data")->capture_default_str();
  cmd->add_option("--max-steps", c.max_steps, "Stop after this many optimizer steps (0: --epochs)")
      ->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Examples per optimizer step")->capture_default_str();
  cmd->add_option("--grad-accum", c.grad_accum, "Micro-batches per step (divides --batch-size)")->capture_default_str();
  cmd->add_option("--max-tokens", c.max_tokens, "Sequence length limit; longer suffixes are cut (reported) (0: none)")
      ->capture_default_str();
  cmd->add_option("--optimizer", a->optimizer, "adam or sgd")->capture_default_str();
  cmd->add_option("--lr", c.optimizer.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--b1", c.optimizer.b1, "Adam beta1")->capture_default_str();
  cmd->add_option("--b2", c.optimizer.b2, "Adam beta2")->capture_default_str();
  cmd->add_option("--eps", c.optimizer.eps, "Adam epsilon")->capture_default_str();
  cmd->add_option("--wd", c.optimizer.weight_decay, "Weight decay (0: off)")->capture_default_str();
  cmd->add_option("--wd-style", a->decay,
                  "bigvision: p -= s (lr u + wd p), the decay not scaled by lr; torch: AdamW's p *= 1 - lr wd")
      ->capture_default_str();
  cmd->add_option("--wd-mask", a->decay_mask,
                  "Tensors that decay: matrices (every 2-D tensor) or bigvision (its default '.*/kernel$': SigLIP and "
                  "projector matrices)")
      ->capture_default_str();
  cmd->add_option("--clip-norm", c.optimizer.clip_norm, "Global-norm gradient clipping (0: off)")
      ->capture_default_str();
  cmd->add_option("--schedule", a->schedule, "cosine, constant or rsqrt (after the warmup)")->capture_default_str();
  cmd->add_option("--warmup", c.warmup_fraction, "Linear warmup, as a fraction of the steps")->capture_default_str();
  cmd->add_option("--label-smoothing", c.loss.label_smoothing, "Label smoothing (big_vision's rule)")
      ->capture_default_str();
  cmd->add_option("--dropout", c.loss.dropout,
                  "Dropout on the decoder's attention and MLP outputs (big_vision's LLM dropout; 0: off)")
      ->capture_default_str();
  cmd->add_flag("--grad-checkpoint", c.loss.checkpoint_layers,
                "Gradient checkpointing: keep only each layer's input and recompute the layer in the backward "
                "(less memory, about one more forward of compute; the same gradients)");
  cmd->add_option(
         "--loss-reduction", a->reduction,
         "example: mean per example then over the batch (big_vision); token: mean over all tokens (transformers)")
      ->capture_default_str();
  cmd->add_flag("--no-final-softcap", a->no_final_softcap,
                "Gemma 2: train without the final logit soft-cap (big_vision)");
  cmd->add_option("--sliding-window", a->sliding_window, "off (full attention, as PaliGemma 2 was trained) or hf")
      ->capture_default_str();
  cmd->add_option("--train-set", a->trainable, "What trains: full, frozen-vision, attention or lora")
      ->capture_default_str();
  cmd->add_option("--lora-rank", c.lora.rank, "LoRA rank r")->capture_default_str();
  cmd->add_option("--lora-alpha", c.lora.alpha, "LoRA alpha (scale alpha / r)")->capture_default_str();
  cmd->add_option("--lora-dropout", c.lora.dropout, "Dropout on each adapter's input while training (PEFT's lora_dropout)")
      ->capture_default_str();
  cmd->add_option("--lora-targets", c.lora.targets, "Decoder modules with adapters (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--lora-vision", c.lora.vision, "Adapters on the SigLIP tower's attention and MLP too");
  cmd->add_flag("--export-merged", c.export_merged, "LoRA: also write the merged checkpoint to OUT/model");
  cmd->add_option("--seed", c.seed, "Seed of the data order")->capture_default_str();
  cmd->add_flag("--no-shuffle", a->no_shuffle, "Data in file order");
  cmd->add_option("--resize", a->resize, "Image resize: pil (transformers) or bigvision")->capture_default_str();
  cmd->add_option("--eval-every", c.eval_every, "Steps between validation passes (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--eval-metrics", c.eval_metrics,
                  "Task metrics at each validation pass on the first N validation records (greedy answers: caption "
                  "CIDEr, VQA accuracy, detection mAP@0.5, segmentation mIoU, OCR exact match; -1: all; 0: off)")
      ->capture_default_str();
  cmd->add_option("--eval-max-new-tokens", c.eval_max_new_tokens, "Answer length limit for --eval-metrics")
      ->capture_default_str();
  cmd->add_option("--vae", c.vae_path, "VQ-VAE npz (vae-oid.npz layout) decoding segment answers for --eval-metrics");
  cmd->add_option("--save-every", c.save_every, "Steps between saves of the resumable state (0: only at the end)")
      ->capture_default_str();
  cmd->add_flag("--resume", c.resume, "Continue from OUT/state (same data and settings)");
  cmd->add_flag("--skip-bad-lines", c.skip_bad_lines, "Report malformed JSONL lines and go on (default: stop)");
  cmd->add_option("--export-dtype", a->export_dtype, "Exported checkpoint dtype: bf16 or f32")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str();
  cmd->add_flag("--quiet", c.quiet, "No progress on stderr");
  return [a] { return finetune(*a); };
}

}  // namespace pg::cli
