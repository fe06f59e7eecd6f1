// `paligemma resolution`: a checkpoint at another image size, position embeddings resampled
// (include/paligemma/resolution.h), the start of PaliGemma's stage 2.
#include <memory>

#include "cli/commands.h"
#include "paligemma/resolution.h"

namespace pg::cli {

Runner add_resolution_command(CLI::App& app) {
  struct Args {
    std::string model, out;
    int image_size = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "resolution",
      "Write a checkpoint at another image size: position embeddings resampled as big_vision's resample_posemb "
      "(stage 2 of the PaliGemma recipe)");
  cmd->add_option("--model", args->model, "Model directory (config.json, safetensors, tokenizer.model)")->required();
  cmd->add_option("--image-size", args->image_size, "New image size in pixels (a multiple of the patch size)")
      ->required();
  cmd->add_option("--out", args->out, "Output directory (must not exist or be empty)")->required();
  return [args] {
    ResolutionOptions o;
    o.image_size = args->image_size;
    o.quiet = false;
    change_resolution(args->model, args->out, o);
    return 0;
  };
}

}  // namespace pg::cli
