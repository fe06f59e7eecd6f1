#include "cli/model_flags.h"

#include <chrono>
#include <iostream>

#include "paligemma/error.h"

namespace pg::cli {

void add_model_flags(CLI::App& cmd, ModelFlags& f) {
  cmd.add_option("--model", f.dir, "Hugging Face model directory (config.json, *.safetensors, tokenizer.model)")
      ->required();
  cmd.add_option("--sliding-window", f.sliding_window,
                 "off: full attention on every layer (how PaliGemma 2 was trained); hf: transformers' sliding window")
      ->capture_default_str();
  cmd.add_option("--final-softcap", f.final_softcap,
                 "on: apply Gemma 2's final logit soft-cap as transformers does; off: big_vision's transfer setting")
      ->capture_default_str();
  cmd.add_option("--threads", f.threads, "Threads (0: all cores)")->capture_default_str();
  cmd.add_flag("--quiet", f.quiet, "No progress messages on stderr");
}

ModelOptions model_options(const ModelFlags& f) {
  ModelOptions o;
  if (f.sliding_window == "off") o.sliding_window = SlidingWindowMode::Off;
  else if (f.sliding_window == "hf") o.sliding_window = SlidingWindowMode::Transformers;
  else throw Error("--sliding-window must be off or hf, not '" + f.sliding_window + "'");
  if (f.final_softcap == "on") o.final_logit_softcap = true;
  else if (f.final_softcap == "off") o.final_logit_softcap = false;
  else throw Error("--final-softcap must be on or off, not '" + f.final_softcap + "'");
  if (f.threads < 0 || f.threads > 1024) throw Error("--threads must be between 0 (all cores) and 1024");
  o.threads = f.threads;
  return o;
}

std::unique_ptr<Model> load_model_with_progress(const ModelFlags& f) {
  ModelOptions options = model_options(f);
  auto t0 = std::chrono::steady_clock::now();
  if (!f.quiet) std::cerr << "loading " << f.dir << " ..." << std::flush;
  std::unique_ptr<Model> model;
  try {
    model = Model::load(f.dir, options);
  } catch (...) {
    if (!f.quiet) std::cerr << " failed\n";
    throw;
  }
  if (!f.quiet) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << " done in " << s << " s (" << model->checkpoint().total_bytes() / (1024.0 * 1024.0)
              << " MiB mapped)\n";
  }
  return model;
}

}  // namespace pg::cli
