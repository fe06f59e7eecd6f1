// `paligemma init`: a freshly initialised checkpoint from a config.json (include/paligemma/model_init.h).
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "paligemma/error.h"
#include "paligemma/model_init.h"

namespace pg::cli {
namespace {

struct InitArgs {
  std::string config, tokenizer, out, dtype = "f32", vision_posemb = "normal", vision_attention = "xavier";
  uint64_t seed = 0;
  bool zero_projector = false, fit_vocabulary = false;
};

// The enum named by a two-way option's value, or an error naming both choices.
template <class E>
E either(const char* flag, const std::string& value, const char* first, E first_value, const char* second,
         E second_value) {
  if (value == first) return first_value;
  if (value == second) return second_value;
  throw Error(std::string("init: ") + flag + " must be " + first + " or " + second + ", got '" + value + "'");
}

int init(const InitArgs& a) {
  ModelInitOptions o;
  o.seed = a.seed;
  o.dtype = either("--dtype", a.dtype, "f32", DType::F32, "bf16", DType::BF16);
  o.zero_projector = a.zero_projector;
  o.vision_position = either("--vision-posemb", a.vision_posemb, "normal", VisionPositionInit::Normal, "sincos2d",
                             VisionPositionInit::SinCos2D);
  o.vision_attention = either("--vision-attention", a.vision_attention, "xavier", VisionAttentionInit::Xavier,
                              "mimetic", VisionAttentionInit::Mimetic);
  o.fit_vocabulary = a.fit_vocabulary;
  o.quiet = false;
  init_model(a.config, a.tokenizer, a.out, o);
  return 0;
}

}  // namespace

Runner add_init_command(CLI::App& app) {
  auto args = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand(
      "init", "Write a freshly initialised checkpoint (transformers' init rules) from a config.json, to train from scratch");
  cmd->add_option("--config", args->config, "PaliGemma config.json (copied to the output)")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "SentencePiece tokenizer.model (copied to the output)")->required();
  cmd->add_option("--out", args->out, "Output directory (must not exist or be empty)")->required();
  cmd->add_option("--seed", args->seed, "Seed of the random weights")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "Stored dtype: f32 or bf16")->capture_default_str();
  cmd->add_flag("--zero-projector", args->zero_projector, "Projector weight 0 (big_vision's stage-1 init)");
  cmd->add_option("--vision-posemb", args->vision_posemb,
                  "Vision position embeddings: normal (transformers' init) or sincos2d (big_vision's posemb_sincos_2d, "
                  "still trained)")
      ->capture_default_str();
  cmd->add_option("--vision-attention", args->vision_attention,
                  "Vision attention weights: xavier (transformers' init) or mimetic (Trockman & Kolter 2023: heads "
                  "start near identity attention; faster learning from little data)")
      ->capture_default_str();
  cmd->add_flag("--fit-vocabulary", args->fit_vocabulary,
                "Set image_token_index to the tokenizer's piece count and vocab_size to the next multiple of 64 above it");
  return [args] { return init(*args); };
}

}  // namespace pg::cli
