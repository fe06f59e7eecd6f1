// `paligemma vae-train`: train big_vision's mask VQ-VAE on the synthetic world's instance masks
// (include/paligemma/vae_train.h); the npz it writes is a `--vae` for `world` and segmentation.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/duration.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/vae_train.h"

namespace pg::cli {
namespace {

struct VaeTrainArgs {
  VaeTrainOptions options;
  bool constant_lr = false;
  bool json = false;
  int threads = 0;
};

int vae_train(const VaeTrainArgs& a) {
  VaeTrainOptions o = a.options;
  o.cosine = !a.constant_lr;
  validate_vae_train_options(o);
  set_threads(a.threads);
  std::cerr << "vae-train: C " << o.channels << ", D " << o.code_dim << ", K " << o.codebook << ", batch "
            << o.batch_size << ", " << o.steps << " steps, lr " << o.lr << (o.cosine ? " cosine" : " constant")
            << (o.resume ? ", resuming" : "") << "\n";
  const VaeTrainSummary s = train_mask_vae(o, [](const VaeTrainProgress& p) {
    char line[320];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld  loss %.4f (recon %.4f, codebook %.4f, commit %.4f)  codes %d, perplexity %.1f, "
                  "restarted %lld",
                  static_cast<long long>(p.step), static_cast<long long>(p.total_steps), p.loss, p.reconstruction,
                  p.codebook_loss, p.commitment, p.codes_used, p.perplexity, static_cast<long long>(p.restarted));
    std::cerr << line;
    if (p.val_iou >= 0) {
      std::snprintf(line, sizeof line, "  held-out IoU %.4f", p.val_iou);
      std::cerr << line;
    }
    std::snprintf(line, sizeof line, "  %.3f s/step, ETA ", p.seconds_per_step);
    std::cerr << line << clock_string(p.eta_seconds) << "\n";
  });
  if (a.json) {
    nlohmann::json j{{"out", s.out_path},
                     {"state", s.state_path},
                     {"steps", s.steps},
                     {"start_step", s.start_step},
                     {"channels", s.channels},
                     {"code_dim", s.code_dim},
                     {"codebook", s.codebook},
                     {"val_iou", s.val_iou},
                     {"baseline_iou", s.baseline_iou},
                     {"val_codes_used", s.codes_used},
                     {"val_perplexity", s.perplexity},
                     {"loss", s.loss},
                     {"reconstruction", s.reconstruction},
                     {"seconds", s.seconds},
                     {"seconds_per_step", s.seconds_per_step}};
    std::cout << j.dump(2) << "\n";
  } else {
    char line[256];
    std::snprintf(line, sizeof line, "held-out mean IoU %.4f (whole-box baseline %.4f), %d codes used, %.1f s",
                  s.val_iou, s.baseline_iou, s.codes_used, s.seconds);
    std::cout << "vae-train: wrote " << s.out_path << "; " << line << "\n";
  }
  return 0;
}

}  // namespace

Runner add_vae_train_command(CLI::App& app) {
  auto args = std::make_shared<VaeTrainArgs>();
  VaeTrainOptions& o = args->options;
  CLI::App* cmd = app.add_subcommand(
      "vae-train", "Train the segmentation mask VQ-VAE (vae-oid.npz layout) on the synthetic world's masks");
  cmd->add_option("--out", o.out_path, "Output npz (vae-oid keys); the resume state goes to OUT.state.npz")->required();
  cmd->add_option("--steps", o.steps, "Total optimiser steps")->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Masks per step")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Adam learning rate (peak)")->capture_default_str();
  cmd->add_option("--warmup", o.warmup_steps, "Linear warmup steps")->capture_default_str();
  cmd->add_flag("--constant-lr", args->constant_lr, "Constant learning rate after the warmup (default: cosine)");
  cmd->add_option("--channels", o.channels, "Width C (multiple of 8; the published model has 128)")
      ->capture_default_str();
  cmd->add_option("--code-dim", o.code_dim, "Code dimension D")->capture_default_str();
  cmd->add_option("--codebook", o.codebook, "Codebook size K (PaliGemma's <seg> tokens: 128)")->capture_default_str();
  cmd->add_option("--beta", o.beta, "Commitment loss weight")->capture_default_str();
  cmd->add_option("--seed", o.seed, "World seed of the training masks and of the initialisation")
      ->capture_default_str();
  cmd->add_option("--val-seed", o.val_seed, "World seed of the held-out masks")->capture_default_str();
  cmd->add_option("--val-masks", o.val_masks, "Held-out masks")->capture_default_str();
  cmd->add_option("--world-size", o.world_size, "Scene side in pixels")->capture_default_str();
  cmd->add_option("--max-objects", o.max_objects, "Objects per scene, at most")->capture_default_str();
  cmd->add_option("--restart-every", o.restart_every, "Restart codes unused for this many steps (0: never)")
      ->capture_default_str();
  cmd->add_option("--eval-every", o.eval_every, "Held-out IoU every this many steps (0: at the end only)")
      ->capture_default_str();
  cmd->add_option("--log-every", o.log_every, "Progress line every this many steps")->capture_default_str();
  cmd->add_option("--save-every", o.save_every, "Write the npz and the state every this many steps (0: at the end)")
      ->capture_default_str();
  cmd->add_flag("--resume", o.resume, "Continue from OUT.state.npz up to --steps");
  cmd->add_flag("--json", args->json, "Print the summary as JSON on stdout");
  cmd->add_option("--threads", args->threads, "Threads (0: all cores)")->capture_default_str();
  return [args] { return vae_train(*args); };
}

}  // namespace pg::cli
