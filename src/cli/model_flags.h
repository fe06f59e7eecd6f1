#pragma once
// Options shared by every subcommand that loads a model.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "paligemma/model.h"

namespace pg::cli {

struct ModelFlags {
  std::string dir;
  std::string sliding_window = "off";
  std::string final_softcap = "on";
  std::string kv_cache = "f32";
  std::string lora;  // PEFT adapter directory
  int threads = 0;
  std::string kernels = "auto";
  std::string precision = "auto";
  bool quiet = false;
  bool profile = false;
};

void add_model_flags(CLI::App& cmd, ModelFlags& flags);
ModelOptions model_options(const ModelFlags& flags);
// Applies --kernels / --precision / --threads to the process-wide backend.
void apply_backend_flags(const ModelFlags& flags);
// Loads the model, reporting what it does on stderr unless --quiet.
std::unique_ptr<Model> load_model_with_progress(const ModelFlags& flags);

}  // namespace pg::cli
