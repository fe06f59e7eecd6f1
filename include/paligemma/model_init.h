#pragma once
// A freshly initialised PaliGemma / PaliGemma 2 checkpoint from a config.json, in the
// Hugging Face layout transformers 5 writes (model.language_model.*, model.vision_tower.*,
// model.multi_modal_projector.*, lm_head.* when untied), for training from scratch.
//
// Initialisation follows transformers' `_init_weights` of each sub-model's own class (in
// transformers 5 each PreTrainedModel sub-module is initialised by its own class):
//   Gemma / Gemma 2 (GemmaPreTrainedModel), std = text_config.initializer_range (default 0.02):
//     embed_tokens          normal(0, std), the row of text_config.pad_token_id (default 0) zero
//                           (nn.Embedding padding_idx)
//     q/k/v/o_proj, gate/up/down_proj, lm_head (untied only)   normal(0, std)
//     every RMSNorm (input_layernorm, post_attention_layernorm, pre_/post_feedforward_layernorm,
//                    norm)  0 (Gemma's norm multiplies by 1 + w)
//   SigLIP vision tower (SiglipPreTrainedModel._init_weights, checked against transformers 5.23
//   modeling_siglip.py):
//     patch_embedding.weight   lecun normal: truncated normal on [-2, 2] sigma, std sqrt(1 / (C*P*P))
//     patch_embedding.bias     0
//     position_embedding       normal(0, 1 / sqrt(vision hidden_size))
//     q/k/v/out_proj.weight    xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
//     q/k/v/out_proj.bias      0
//     fc1/fc2.weight           xavier uniform
//     fc1/fc2.bias             normal(0, 1e-6)
//     layer_norm1/2, post_layernorm   weight 1, bias 0
//   Projector (PaliGemmaPreTrainedModel): linear.weight normal(0, std), bias 0; with
//     `zero_projector` the weight is 0 as well (big_vision's stage-1 init).
//
// Two optional vision-tower inits for towers trained from nothing on little data (both leave
// the architecture and the checkpoint layout as they are; the tensors still train):
//   VisionPositionInit::SinCos2D   position_embedding = big_vision's posemb_sincos_2d(g, g,
//                                  width) (vit.py; temperature 10000; width % 4 == 0)
//   VisionAttentionInit::Mimetic   Trockman & Kolter, "Mimetic Initialization of Self-Attention
//                                  Layers" (ICML 2023, Algorithm 1): per head h, W_q,h^T W_k,h is
//                                  the best rank-head_dim approximation of 0.7 Z_h + 0.7 I, and per
//                                  layer the value-output map W_out W_v is (0.4 Z - 0.4 I)^T at full
//                                  rank (Z normal(0, 1 / width)): each head starts attending to
//                                  tokens like its own (with SinCos2D: its neighbours), and the
//                                  layer passes them on. The SVD is LAPACK's dgesvd.
//
// Random numbers: each tensor has its own stream, splitmix64 seeded from (seed, tensor name),
// normals by Box-Muller; never std::normal_distribution, so files are identical across
// standard libraries and the values of a tensor do not depend on which others exist.
#include <cstdint>
#include <string>

#include "paligemma/tensor.h"

namespace pg {

enum class VisionPositionInit { Normal, SinCos2D };
enum class VisionAttentionInit { Xavier, Mimetic };

struct ModelInitOptions {
  uint64_t seed = 0;
  DType dtype = DType::F32;     // F32 or BF16 (values rounded to nearest even)
  bool zero_projector = false;  // projector weight 0 (bias is 0 anyway)
  VisionPositionInit vision_position = VisionPositionInit::Normal;     // Normal: transformers'
  VisionAttentionInit vision_attention = VisionAttentionInit::Xavier;  // Xavier: transformers'
  // Size the vocabulary to the tokenizer (a model trained from scratch with our own
  // tokenizer): image_token_index = its piece count (the id after the last piece, as in the
  // released models), vocab_size (top level and text_config) = that + 1 rounded up to a
  // multiple of 64. The copied config.json carries the values written.
  bool fit_vocabulary = false;
  bool quiet = true;            // false: progress lines on stderr
};

// Writes out_dir/config.json (a copy of `config_json_path`), out_dir/model.safetensors and
// out_dir/tokenizer.model (a copy of `tokenizer_path`). The config is parsed by
// load_model_config (its errors are the parser's). `out_dir` must not exist or be empty.
// Throws pg::Error for missing inputs, a non-empty out_dir, a bad dtype or config; on error
// the files it wrote are removed.
void init_model(const std::string& config_json_path, const std::string& tokenizer_path, const std::string& out_dir,
                const ModelInitOptions& options);
void init_model(const std::string& config_json_path, const std::string& tokenizer_path, const std::string& out_dir,
                uint64_t seed, DType dtype);

}  // namespace pg
