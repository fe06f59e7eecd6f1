#pragma once
// LoRA adapters (Hu et al. 2021, as PEFT implements them): a frozen weight W [out, in] gains
// W + s B A with A [r, in], B [out, r], s = alpha / r. A starts as PEFT's
// kaiming_uniform(a = sqrt(5)) (uniform in +-1/sqrt(in)), B at zero, so training starts from
// the base model exactly. Saved and loaded in PEFT's format: adapter_model.safetensors with
// "base_model.model.<module>.lora_A.weight" / ".lora_B.weight" and adapter_config.json.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "paligemma/checkpoint.h"
#include "paligemma/finetune.h"
#include "train/parameters.h"

namespace pg::train {

// Adapter tensors keyed "<base weight canonical name>@lora_A" / "@lora_B".
struct LoraAdapters {
  LoraConfig config;
  Parameters tensors;
  bool has(const std::string& weight) const { return tensors.has(weight + "@lora_A"); }
  const float* a(const std::string& weight) const { return tensors.data(weight + "@lora_A"); }
  const float* b(const std::string& weight) const { return tensors.data(weight + "@lora_B"); }
};

// The base weights (canonical names) that get adapters under `config`.
std::vector<std::string> lora_target_weights(const Parameters& base, const LoraConfig& config);
// Fresh adapters (A random from config.seed, B zero). Throws when no weight matches.
LoraAdapters init_lora(const Parameters& base, const LoraConfig& config);
// W + s B A for every adapted weight (for export of a merged checkpoint, and tests).
void merge_lora(const LoraAdapters& lora, Parameters& base);

// PEFT files in `dir`: adapter_model.safetensors (f32) and adapter_config.json
// (base_model_name_or_path = `base_model`). Module names are transformers 5's
// (model.language_model.*, model.vision_tower.*).
void save_peft(const LoraAdapters& lora, const std::string& base_model, const std::string& dir);
// Reads a PEFT adapter (r, lora_alpha from adapter_config.json) for a model whose weights
// have these canonical names and shapes (or those of `base`).
LoraAdapters load_peft(const std::string& dir, const std::map<std::string, std::vector<int64_t>>& weight_shapes);
LoraAdapters load_peft(const std::string& dir, const Parameters& base);

// transformers 5 module path of a canonical weight name ("language_model.model.layers.0.
// self_attn.q_proj.weight" -> "model.language_model.layers.0.self_attn.q_proj").
std::string hf_module_path(const std::string& canonical_weight);

}  // namespace pg::train
