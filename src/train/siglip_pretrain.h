#pragma once
// SigLIP contrastive model (transformers' SiglipModel) on the trainer's Parameters: loss and
// gradients of a batch, embeddings, retrieval, and the initialisation of the tensors PaliGemma
// lacks. Tensor names: the vision tower as PaliGemma's checkpoint names it
// ("vision_tower.vision_model.*", the pooling head under "vision_tower.vision_model.head.*"),
// the text tower as SiglipModel ("text_model.*"), "logit_scale" and "logit_bias" ([1] each).
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/config.h"
#include "paligemma/pretrain.h"
#include "train/encoder_layer.h"
#include "train/parameters.h"

namespace pg::train {

struct SiglipShapes {
  VisionConfig vision;
  EncoderShape text;
  int text_layers = 0;
  int vocab = 0;
  int max_positions = 0;
  int embed_dim() const { return vision.hidden_size; }  // the text head's output = the pooled image width
};

// The sizes from PaliGemma's vision config and the text tower's options (0 = vision's value).
SiglipShapes siglip_shapes(const VisionConfig& vision, const TextTowerConfig& text, int vocab);

struct ContrastiveExample {
  std::vector<float> pixels;  // [3, S, S], preprocessed as for PaliGemma
  std::vector<int> ids;       // caption tokens, ending with <eos>
  std::string caption;
};

// Caption -> token ids: the tokenizer's pieces, cut to max_positions - 1, then <eos>.
std::vector<int> caption_ids(const std::vector<int>& tokens, int eos_id, int max_positions);

// The pooling head, the text tower and logit_scale / logit_bias, freshly initialised after
// transformers' SiglipPreTrainedModel._init_weights (see siglip_pretrain.cpp), each tensor
// from its own stream seeded by (seed, name).
Parameters init_contrastive_tensors(const SiglipShapes& s, uint64_t seed, double t_prime, double bias);

// Every tensor name init_contrastive_tensors makes, and the vision tower's (those the
// checkpoint must have).
bool is_contrastive_tensor(const std::string& name);

struct ContrastiveResult {
  double loss = 0;
  std::vector<float> image_embeds, text_embeds;  // [n, embed_dim], not normalised
};

// SiglipModel(return_loss=True) on a batch (n >= 2): with `grads`, adds d loss / d parameter
// for every tensor grads holds. The loss needs every embedding before any backward: the
// batch's activations are kept when they fit about 1 GB, otherwise each example's forward
// runs again before its backward (memory: one example's activations). The gradients are the
// same either way (always_recompute forces the second way, for the test that says so).
ContrastiveResult contrastive_loss_and_gradients(const Parameters& params, const SiglipShapes& s,
                                                 const std::vector<ContrastiveExample>& batch, Parameters* grads,
                                                 bool always_recompute = false);

// Image -> text top-1 over the batch, a caption with the same text counting as a hit; and the
// chance level of that measure.
double retrieval_accuracy(const ContrastiveResult& r, const std::vector<ContrastiveExample>& batch, int dim,
                          double* chance);

// SiglipModel names of our tensors (siglip/ outputs, the transformers comparison):
// "vision_tower.vision_model.X" <-> "vision_model.X"; the rest is the same.
std::string hf_siglip_name(const std::string& ours);
std::string our_siglip_name(const std::string& hf);

}  // namespace pg::train
