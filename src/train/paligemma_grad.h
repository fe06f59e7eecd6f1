#pragma once
// The loss of PaliGemma on training examples and its gradient with respect to every
// parameter: SigLIP (patch conv, position embedding, pre-LN blocks, post LN), the projector,
// Gemma 1 / Gemma 2 (embedding x sqrt(hidden), RMSNorm (1 + w), RoPE from position 1, GQA,
// attention soft-cap, prefix-LM mask, GeGLU, tied or separate output layer, final soft-cap)
// and the cross-entropy on suffix tokens. f32 throughout, on the trainer's Parameters;
// one example at a time (no padding), accumulating into the gradients.
#include <string>
#include <vector>

#include "paligemma/config.h"
#include "paligemma/finetune.h"
#include "train/parameters.h"

namespace pg::train {

struct LoraAdapters;

// One training sequence, as transformers' PaliGemmaProcessor builds it with a suffix:
// ids = <image> x N x images, <bos>, prefix tokens, "\n", suffix tokens, <eos>.
struct TrainExample {
  std::vector<float> pixels;  // images x [3, S, S], preprocessed as for inference
  std::vector<int> ids;
  int prefix_len = 0;  // image + <bos> + prefix + "\n": attend to each other bidirectionally
  // Position t predicts ids[t + 1] for every t + 1 >= prefix_len (the suffix and <eos>).
  int num_targets() const { return static_cast<int>(ids.size()) - prefix_len; }
};

struct LossResult {
  double loss = 0.0;                 // the batch loss under the reduction
  std::vector<double> example_loss;  // each example's mean token loss
  int tokens = 0;                    // target tokens in the batch
};

// The batch loss; with `grads`, adds d loss / d parameter into it for every tensor grads
// holds (a subset of params' names: the others are frozen and get no gradient).
// With `lora`, every adapted linear adds its LoRA path, and `lora_grads` (same names as
// lora->tensors) receives the adapters' gradients.
LossResult loss_and_gradients(const Parameters& params, const ModelConfig& config,
                              const std::vector<TrainExample>& batch, const LossOptions& options, Parameters* grads,
                              const LoraAdapters* lora = nullptr, Parameters* lora_grads = nullptr);

}  // namespace pg::train
