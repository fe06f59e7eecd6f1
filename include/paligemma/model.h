#pragma once
// A loaded PaliGemma checkpoint: SigLIP vision tower, linear projector, Gemma / Gemma 2
// decoder, tokenizer. Weights are views into the memory-mapped safetensors files.
// Activations are f32; weights may be f32, bf16 or f16 and are widened inside the kernels.
#include <memory>
#include <string>
#include <vector>

#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/feature_cache.h"
#include "paligemma/tokenizer.h"

namespace pg {

enum class SlidingWindowMode {
  Off,          // full attention on every layer: how big_vision trained PaliGemma 2 (default)
  Transformers  // transformers' semantics: causal window on "sliding_attention" layers, the
                // bidirectional prompt block exempt from it
};

struct ModelOptions {
  // Gemma 2's final logit soft-cap (30 * tanh(x / 30)). transformers 5.x applies it, as
  // config.json asks; big_vision sets it to 0 for transfer. Greedy argmax is the same either
  // way; log-probs and losses differ.
  bool final_logit_softcap = true;
  SlidingWindowMode sliding_window = SlidingWindowMode::Off;
  int threads = 0;  // 0: all cores
  // Storage of the KV cache: F32 (default: exact, 4 bytes per value) or BF16 (half the
  // memory, keys and values rounded to bf16 as transformers' bf16 caches are; worth it for
  // long prompts: 896 px images are 4096 tokens, ~0.9 GB of f32 cache on PaliGemma 2 3B).
  DType kv_cache = DType::F32;
  // Fill the weights' page tables at load (when they fit in RAM), so that the first request
  // does not pay the page faults; load takes that time instead.
  bool populate_weights = true;
  // Images whose features are kept for reuse (encode_image_cached); 0 disables.
  int image_cache_entries = 8;
  // A PEFT LoRA adapter directory (adapter_model.safetensors + adapter_config.json, e.g. from
  // `paligemma finetune --train-set lora`), applied beside the weights without merging.
  std::string lora_dir;
};

// Keys and values of one sequence, per layer: [kv_heads][capacity][head_dim] values of
// `dtype` (F32 or BF16, ModelOptions::kv_cache), as raw bytes.
struct KVCache {
  int capacity = 0;
  int length = 0;      // positions filled
  int prefix_len = 0;  // the bidirectional block [0, prefix_len)
  DType dtype = DType::F32;
  std::vector<std::vector<uint8_t>> k, v;
  size_t bytes() const;  // memory held by k and v
};

// One decoder call for one sequence: `count` tokens appended to `cache`.
struct DecoderStep {
  KVCache* cache = nullptr;
  const int* ids = nullptr;
  int count = 0;
  // Rows for the image tokens among `ids`, in order ([images * tokens_per_image, hidden]);
  // null when `ids` has no image token.
  const float* image_features = nullptr;
  int image_rows = 0;  // rows in image_features
  // Logits out: [count, vocab] if all_positions, else [vocab] for the last token.
  float* logits = nullptr;
  bool all_positions = false;
};

class Model {
 public:
  // Reads config.json, maps the safetensors, loads tokenizer.model, checks every tensor's
  // shape against the config. Throws pg::Error naming what is wrong.
  static std::unique_ptr<Model> load(const std::string& model_dir, const ModelOptions& options = {});
  // The same with the weights taken from `weights` (e.g. Checkpoint::with_tensors over the
  // directory's own: a model being fine-tuned, evaluated in place); config.json and
  // tokenizer.model still come from model_dir.
  static std::unique_ptr<Model> load(const std::string& model_dir, const Checkpoint& weights,
                                     const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  const ModelOptions& options() const { return options_; }
  const std::string& dir() const { return dir_; }
  int vocab_size() const { return config_.text.vocab_size; }

  // SigLIP + projector on one preprocessed image, pixels [3, S, S] (CHW). Returns the
  // projected features [tokens_per_image, text hidden]; `vision_hidden` (optional) receives
  // the tower's output after post_layernorm [tokens_per_image, vision hidden].
  std::vector<float> encode_image(const float* pixels, std::vector<float>* vision_hidden = nullptr) const;

  // encode_image through the model's ImageFeatureCache: the same pixels are encoded once.
  ImageFeatureCache::Features encode_image_cached(const std::vector<float>& pixels) const;
  ImageFeatureCache& image_cache() const { return *image_cache_; }

  KVCache new_cache(int capacity, int prefix_len) const;

  // Runs the decoder on several sequences at once (their rows share each matmul).
  void decode(std::vector<DecoderStep>& steps) const;

  struct Weights;  // defined in src/model/weights.h

 private:
  Model() = default;
  std::string dir_;
  ModelConfig config_;
  ModelOptions options_;
  Checkpoint checkpoint_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Weights> weights_;
  std::unique_ptr<ImageFeatureCache> image_cache_;
};

}  // namespace pg
