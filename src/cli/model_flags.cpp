#include "cli/model_flags.h"

#include <chrono>
#include <iostream>

#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"

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
  cmd.add_option("--kv-cache", f.kv_cache, "KV cache storage: f32 (exact) or bf16 (half the memory)")
      ->capture_default_str();
  cmd.add_option("--lora", f.lora,
                 "PEFT LoRA adapter directory (adapter_model.safetensors + adapter_config.json), applied "
                 "beside the weights without merging");
  cmd.add_option("--threads", f.threads, "Threads (0: all cores)")->capture_default_str();
  cmd.add_option("--kernels", f.kernels,
                 "Kernel path: auto (the best this CPU has), amx, avx512, avx2 or reference")
      ->capture_default_str();
  cmd.add_option("--precision", f.precision,
                 "Activations in the compute-bound products: auto (bf16 where the CPU has bf16 products), "
                 "bf16, or f32 (matches transformers f32 to ~1e-5)")
      ->capture_default_str();
  cmd.add_flag("--quiet", f.quiet, "No progress messages on stderr");
  cmd.add_flag("--profile", f.profile, "Print time, GFLOP/s and GB/s per kernel region on stderr at the end");
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
  if (f.kv_cache == "f32") o.kv_cache = DType::F32;
  else if (f.kv_cache == "bf16") o.kv_cache = DType::BF16;
  else throw Error("--kv-cache must be f32 or bf16, not '" + f.kv_cache + "'");
  o.lora_dir = f.lora;
  return o;
}

void apply_backend_flags(const ModelFlags& f) {
  // "auto" keeps the process default (PG_KERNELS / PG_PRECISION, else the best the CPU has);
  // a forced path gets its own best precision unless one is given.
  if (f.kernels != "auto") {
    set_kernel_path(parse_kernel_path(f.kernels));
    if (f.precision == "auto") set_precision(bf16_supported(kernel_path()) ? Precision::BF16 : Precision::F32);
  }
  if (f.precision != "auto") set_precision(parse_precision(f.precision));
  if (f.threads < 0 || f.threads > 1024) throw Error("--threads must be between 0 (all cores) and 1024");
  set_threads(f.threads);
  if (f.profile) profile::set_enabled(true);
}

std::unique_ptr<Model> load_model_with_progress(const ModelFlags& f) {
  ModelOptions options = model_options(f);
  apply_backend_flags(f);
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
