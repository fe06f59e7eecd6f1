#pragma once
// Views of every tensor the forward pass reads, fetched once at load with their shapes
// checked against config.json. 1-D tensors (norm scales, biases: < 0.1% of the parameters)
// are widened to f32 once; matrices stay in the mapped file in their stored dtype.
#include <memory>
#include <string>
#include <vector>

#include "kernels/weight_matrix.h"
#include "paligemma/model.h"

namespace pg {

struct Vec {  // a small f32 copy of a 1-D tensor
  std::vector<float> v;
  const float* data() const { return v.data(); }
};

// A LoRA adapter applied beside a frozen weight without merging (`run --lora`, PEFT files):
// y += scale * (x A^T) B^T, A [rank, in], B [out, rank] in f32.
struct LoraPath {
  int rank = 0;
  float scale = 0;
  std::vector<float> a, b;
  kernels::WeightMatrix a_matrix, b_matrix;  // views of a, b for kernels::matmul
};

struct Linear {
  kernels::WeightMatrix weight;  // [out, in], any format
  Vec bias;                      // [out] or empty
  std::shared_ptr<const LoraPath> lora;  // null: none
  const float* bias_data() const { return bias.v.empty() ? nullptr : bias.v.data(); }
};

// y[M, out] = x W^T + b, plus the LoRA path when the linear has one.
void apply_linear(const Linear& linear, const float* x, int M, float* y);

struct VisionLayer {
  Vec ln1_w, ln1_b, ln2_w, ln2_b;
  Linear q, k, v, out, fc1, fc2;
};

struct TextLayer {
  Linear q, k, v, o, gate, up, down;
  Vec input_norm;          // Gemma 1 and 2: before attention
  Vec post_attn_norm;      // Gemma 1: before the MLP; Gemma 2: on the attention output
  Vec pre_ffw_norm;        // Gemma 2 only: before the MLP
  Vec post_ffw_norm;       // Gemma 2 only: on the MLP output
};

struct Model::Weights {
  kernels::WeightMatrix patch_w;  // [Hv, 3 * P * P]: the OIHW conv kernel as a matrix
  Vec patch_b;
  TensorView position;  // [N, Hv]
  std::vector<VisionLayer> vision;
  Vec post_ln_w, post_ln_b;
  Linear projector;
  kernels::WeightMatrix embed;  // [V, H]
  std::vector<TextLayer> text;
  Vec final_norm;
  kernels::WeightMatrix lm_head;  // [V, H]: the embedding when the checkpoint ties them
};

std::unique_ptr<Model::Weights> load_weights(const Checkpoint& ckpt, const ModelConfig& config);

// Attaches the PEFT LoRA adapter in `dir` to the linears it adapts. Throws pg::Error naming
// the file and tensor when it does not fit the model.
void attach_lora(const std::string& dir, const Checkpoint& ckpt, Model::Weights& weights);

}  // namespace pg
