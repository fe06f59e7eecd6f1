// `paligemma pretrain-vision`: contrastive (SigLIP sigmoid loss) pretraining of a PaliGemma
// checkpoint's vision tower on (image, caption) JSONL records (include/paligemma/pretrain.h).
#include <cstdio>

#include "cli/commands.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/pretrain.h"

namespace pg::cli {
namespace {

struct PretrainArgs {
  train::PretrainConfig c;
  std::string schedule = "cosine", resize = "pil";
  int threads = 0;
};

int pretrain(PretrainArgs& a) {
  using namespace train;
  set_threads(a.threads);
  PretrainConfig& c = a.c;
  if (a.schedule == "cosine")
    c.schedule = ScheduleKind::Cosine;
  else if (a.schedule == "constant")
    c.schedule = ScheduleKind::Constant;
  else
    throw Error("--schedule must be cosine or constant (got \"" + a.schedule + "\")");
  if (a.resize == "pil")
    c.resize = ResizeFilter::PilBicubic;
  else if (a.resize == "bigvision")
    c.resize = ResizeFilter::BigVisionBilinear;
  else
    throw Error("--resize must be pil or bigvision (got \"" + a.resize + "\")");
  const PretrainSummary s = run_pretrain_vision(c);
  auto number = [](double v) { return v >= 0 ? std::to_string(v) : std::string("null"); };
  std::printf(
      "{\"steps\": %lld, \"finished\": %s, \"final_loss\": %.6f, \"t\": %.6f, \"b\": %.6f, \"examples\": %d, "
      "\"val_retrieval_before\": %s, \"val_retrieval_after\": %s, \"val_chance\": %s, \"output\": \"%s\"}\n",
      (long long)s.steps, s.finished ? "true" : "false", s.history.empty() ? 0.0 : s.history.back().loss,
      s.history.empty() ? 0.0 : s.history.back().t, s.history.empty() ? 0.0 : s.history.back().b, s.train_examples,
      number(s.initial_val_accuracy).c_str(), number(s.final_val_accuracy).c_str(), number(s.val_chance).c_str(),
      c.out_dir.c_str());
  return 0;
}

}  // namespace

Runner add_pretrain_command(CLI::App& app) {
  auto a = std::make_shared<PretrainArgs>();
  train::PretrainConfig& c = a->c;
  CLI::App* cmd = app.add_subcommand(
      "pretrain-vision",
      "Pretrain a checkpoint's vision tower contrastively (SigLIP sigmoid loss) on (image, caption) records");
  cmd->add_option("--model", c.model_dir, "PaliGemma checkpoint to start from (e.g. from `paligemma init`)")
      ->required();
  cmd->add_option("--data", c.train_path,
                  "JSONL records {\"image\", \"prefix\", \"suffix\"}: the suffix is the caption")
      ->required();
  cmd->add_option("--val", c.val_path, "Held-out records: image->text top-1 retrieval before and after");
  cmd->add_option("--out", c.out_dir,
                  "Output: a PaliGemma checkpoint with the trained tower, siglip/ (head, text tower, t', b), "
                  "metrics.jsonl, state/")
      ->required();
  cmd->add_option("--steps", c.steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Pairs per step (>= 2; every image against every caption)")
      ->capture_default_str();
  cmd->add_option("--lr", c.optimizer.lr, "Peak learning rate (Adam)")->capture_default_str();
  cmd->add_option("--b2", c.optimizer.b2, "Adam beta2")->capture_default_str();
  cmd->add_option("--wd", c.optimizer.weight_decay, "Weight decay on matrices (big_vision style; 0: off)")
      ->capture_default_str();
  cmd->add_option("--clip-norm", c.optimizer.clip_norm, "Global-norm gradient clipping (0: off)")
      ->capture_default_str();
  cmd->add_option("--warmup", c.warmup_steps, "Linear warmup steps")->capture_default_str();
  cmd->add_option("--schedule", a->schedule, "cosine or constant (after the warmup)")->capture_default_str();
  cmd->add_option("--text-layers", c.text.layers, "Text tower layers")->capture_default_str();
  cmd->add_option("--text-hidden", c.text.hidden, "Text tower width (0: the vision tower's)")->capture_default_str();
  cmd->add_option("--text-heads", c.text.heads, "Text tower heads (0: the vision tower's)")->capture_default_str();
  cmd->add_option("--text-mlp", c.text.intermediate, "Text tower MLP width (0: the vision tower's)")
      ->capture_default_str();
  cmd->add_option("--text-max-positions", c.text.max_positions, "Caption length limit in tokens, <eos> included")
      ->capture_default_str();
  cmd->add_option("--t-init", c.t_prime_init, "Initial t' (the temperature is exp(t'))")->capture_default_str();
  cmd->add_option("--b-init", c.bias_init, "Initial bias b")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seed of the new tensors and of the data order")->capture_default_str();
  cmd->add_option("--resize", a->resize, "Image resize: pil (transformers) or bigvision")->capture_default_str();
  cmd->add_option("--save-every", c.save_every, "Steps between saves of the resumable state (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--stop-after", c.stop_after, "Save the state and stop after this many steps (then --resume)")
      ->capture_default_str();
  cmd->add_flag("--resume", c.resume, "Continue from OUT/state (same data and settings)");
  cmd->add_flag("--skip-bad-lines", c.skip_bad_lines, "Report malformed JSONL lines and go on (default: stop)");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str();
  cmd->add_flag("--quiet", c.quiet, "No progress on stderr");
  return [a] { return pretrain(*a); };
}

}  // namespace pg::cli
