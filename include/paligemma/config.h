#pragma once
// The architecture of one checkpoint, read from its config.json. Every size comes from
// here; nothing is hard-coded to one model. Fields a released config.json omits take the
// defaults of the transformers config class it was written from (save_pretrained writes only
// values that differ from the class defaults), so those defaults are part of the format.
#include <string>
#include <vector>

namespace pg {

struct VisionConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_channels = 3;
  int image_size = 0;
  int patch_size = 0;
  float layer_norm_eps = 1e-6f;
  std::string hidden_act;  // "gelu_pytorch_tanh" (SigLIP) or "gelu"

  int head_dim() const { return hidden_size / num_heads; }
  int patches_per_side() const { return image_size / patch_size; }
  int num_patches() const { return patches_per_side() * patches_per_side(); }
};

enum class TextArch { Gemma, Gemma2 };

struct TextConfig {
  TextArch arch = TextArch::Gemma;
  std::string model_type;  // "gemma" or "gemma2"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  std::string hidden_act;  // "gelu_pytorch_tanh" or "gelu"
  // Gemma 2 only (0 = off).
  float query_pre_attn_scalar = 0.0f;  // attention scale is its ^-0.5; Gemma 1 uses head_dim
  float attn_logit_softcap = 0.0f;
  float final_logit_softcap = 0.0f;
  int sliding_window = 0;
  std::vector<bool> layer_is_sliding;  // per layer: true where HF uses sliding attention

  float query_scale() const;  // (query_pre_attn_scalar or head_dim)^-0.5
};

struct ModelConfig {
  VisionConfig vision;
  TextConfig text;
  int image_token_index = 0;
  int projection_dim = 0;
  // Generation stops at any of these (text_config.eos_token_id, else the top level's;
  // an int or a list, as transformers accepts).
  std::vector<int> eos_token_ids{1};

  bool is_eos(int id) const;

  int image_tokens_per_image() const { return vision.num_patches(); }
};

// Parses `config.json` text. `source` names the file in error messages.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace pg
