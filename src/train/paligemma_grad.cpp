// Forward with saved activations, then backward, layer by layer in reverse (llm.c style).
// Each step names the transformers code it mirrors; the inference forward (src/model/) is the
// same computation without the saved state.
#include "train/paligemma_grad.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "train/encoder_layer.h"
#include "train/layers.h"
#include "train/lora.h"

namespace pg::train {
namespace {

// ---------------------------------------------------------------- SigLIP + projector

// SiglipVisionTransformer + PaliGemmaMultiModalProjector on `images` images (one after the
// other in `pixels`, sharing every product): features [images * N, H].
Buf vision_forward(const Access& A, const ModelConfig& c, const float* pixels, int images, Keep keep,
                   VisionState& st) {
  const VisionConfig& vc = c.vision;
  const int N = images * vc.num_patches(), Hv = vc.hidden_size;
  const Buf& post = vision_tower_forward(A, vc, pixels, images, keep, st);
  Buf features(static_cast<size_t>(N) * c.projection_dim);
  A.linear_fwd(post.data(), N, Hv, "multi_modal_projector.linear.weight", A.w("multi_modal_projector.linear.bias"),
               c.projection_dim, features.data());
  return features;
}

void vision_backward(const Access& A, const ModelConfig& c, VisionState& st, const float* dfeatures) {
  const VisionConfig& vc = c.vision;
  if (st.keep == Keep::Nothing) throw Error("internal: the vision forward kept nothing for its backward");
  const int N = st.images * vc.num_patches(), Hv = vc.hidden_size;
  Buf dpost(static_cast<size_t>(N) * Hv, 0.0f);
  A.linear_bwd(dfeatures, st.post.data(), "multi_modal_projector.linear.weight", N, Hv, c.projection_dim, dpost.data(),
               A.d("multi_modal_projector.linear.bias"));
  vision_tower_backward(A, vc, st, dpost.data());
}

// ---------------------------------------------------------------- Gemma decoder

struct TextLayerState {
  Buf x_in, h1, rstd1, q, k, v, attn, o, o_norm_rstd, x_mid, h2, rstd2, gate, up, act, m, m_norm_rstd;
  std::vector<uint8_t> attn_keep, mlp_keep;  // dropout masks of the two residual branches (or empty)
  AttentionSaved<float> saved;
};

std::string text_layer(int l) { return "language_model.model.layers." + std::to_string(l) + "."; }

// The decoder's per-example constants.
struct TextPass {
  const TextConfig& tc;
  const LossOptions& options;
  kernels::AttentionShape shape;
  int T = 0, prefix_len = 0;
  const float* cos_t = nullptr;  // RoPE tables [T, D / 2]
  const float* sin_t = nullptr;
  uint64_t example = 0;  // the example's index in the batch (dropout masks)
  bool gemma2() const { return tc.arch == TextArch::Gemma2; }
  kernels::AttentionMask mask(int l) const {
    kernels::AttentionMask m;
    m.causal = true;
    m.prefix_len = prefix_len;
    m.window = options.hf_sliding_window && tc.layer_is_sliding[l] ? tc.sliding_window : 0;
    return m;
  }
  // Each example, layer and branch draws its own dropout mask from (dropout_seed, example,
  // layer, branch).
  uint64_t dropout_seed(int l, int branch) const {
    return options.dropout_seed * 0x9E3779B97F4A7C15ull + (example << 32) + static_cast<uint64_t>(l) * 2 + branch;
  }
  std::string mlp_norm() const {
    return gemma2() ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight";
  }
};

// The two residual branches of a decoder layer. Each adds its output to the residual stream
// after Gemma 2's post-norm (post_attention_layernorm / post_feedforward_layernorm; Gemma 1
// has none) and the dropout mask.
constexpr int kAttentionBranch = 0, kMlpBranch = 1;

std::string branch_post_norm(int branch) {
  return branch == kAttentionBranch ? "post_attention_layernorm.weight" : "post_feedforward_layernorm.weight";
}

// x += dropout([post_norm](out)); rstd and keep receive what the backward needs.
void add_branch(const Access& A, const TextPass& P, int l, int branch, const Buf& out, Buf& rstd,
                std::vector<uint8_t>& keep, Buf& x) {
  const int T = P.T, H = P.tc.hidden_size;
  Buf y;
  if (P.gemma2()) {
    y.resize(out.size());
    rstd.resize(T);
    rms_norm_forward(out.data(), T, H, A.w(text_layer(l) + branch_post_norm(branch)), P.tc.rms_norm_eps, y.data(),
                     rstd.data());
  } else {
    y = out;
  }
  if (P.options.dropout > 0.0f) {
    keep = dropout_mask(static_cast<int64_t>(y.size()), P.options.dropout, P.dropout_seed(l, branch));
    apply_dropout(y.data(), keep, P.options.dropout);
  }
  add_into(x.data(), y.data(), x.size());
}

// The gradient of the branch output `out` from the residual's gradient dx (through the
// dropout and the post-norm, whose weight gradient is added).
Buf branch_backward(const Access& A, const TextPass& P, int l, int branch, const Buf& out, const Buf& rstd,
                    const std::vector<uint8_t>& keep, const Buf& dx) {
  Buf dy = dx;
  if (P.options.dropout > 0.0f) apply_dropout(dy.data(), keep, P.options.dropout);
  if (!P.gemma2()) return dy;
  Buf dout(dx.size(), 0.0f);
  const std::string norm = text_layer(l) + branch_post_norm(branch);
  rms_norm_backward(dy.data(), out.data(), P.T, P.tc.hidden_size, A.w(norm), rstd.data(), dout.data(), A.d(norm));
  return dout;
}

// GemmaDecoderLayer / Gemma2DecoderLayer: x += [post_attention_norm](o_proj(attention(rope(
// q, k), v))) with q/k/v = proj(input_layernorm(x)); x += [post_feedforward_norm](down(
// gelu(gate) * up)) of the MLP norm of x; each branch output through dropout. x [T, H] in place.
void text_layer_forward(const Access& A, const TextPass& P, int l, Buf& x, TextLayerState& s) {
  const TextConfig& tc = P.tc;
  const int T = P.T, H = tc.hidden_size, I = tc.intermediate_size, D = tc.head_dim;
  const int q_dim = tc.num_heads * D, kv_dim = tc.num_kv_heads * D;
  const std::string lp = text_layer(l);
  s.x_in = x;
  s.h1.resize(x.size());
  s.rstd1.resize(T);
  rms_norm_forward(x.data(), T, H, A.w(lp + "input_layernorm.weight"), tc.rms_norm_eps, s.h1.data(), s.rstd1.data());
  s.q.resize(static_cast<size_t>(T) * q_dim);
  s.k.resize(static_cast<size_t>(T) * kv_dim);
  s.v.resize(s.k.size());
  A.linear_fwd(s.h1.data(), T, H, lp + "self_attn.q_proj.weight", nullptr, q_dim, s.q.data());
  A.linear_fwd(s.h1.data(), T, H, lp + "self_attn.k_proj.weight", nullptr, kv_dim, s.k.data());
  A.linear_fwd(s.h1.data(), T, H, lp + "self_attn.v_proj.weight", nullptr, kv_dim, s.v.data());
  rope_forward(s.q.data(), T, tc.num_heads, D, P.cos_t, P.sin_t);
  rope_forward(s.k.data(), T, tc.num_kv_heads, D, P.cos_t, P.sin_t);
  s.attn.resize(s.q.size());
  attention_forward(s.q.data(), s.k.data(), s.v.data(), T, P.shape, P.mask(l), s.attn.data(), &s.saved);
  s.o.resize(x.size());
  A.linear_fwd(s.attn.data(), T, q_dim, lp + "self_attn.o_proj.weight", nullptr, H, s.o.data());
  add_branch(A, P, l, kAttentionBranch, s.o, s.o_norm_rstd, s.attn_keep, x);
  s.x_mid = x;
  s.h2.resize(x.size());
  s.rstd2.resize(T);
  rms_norm_forward(x.data(), T, H, A.w(lp + P.mlp_norm()), tc.rms_norm_eps, s.h2.data(), s.rstd2.data());
  s.gate.resize(static_cast<size_t>(T) * I);
  s.up.resize(s.gate.size());
  s.act.resize(s.gate.size());
  A.linear_fwd(s.h2.data(), T, H, lp + "mlp.gate_proj.weight", nullptr, I, s.gate.data());
  A.linear_fwd(s.h2.data(), T, H, lp + "mlp.up_proj.weight", nullptr, I, s.up.data());
  geglu_forward(s.gate.data(), s.up.data(), s.gate.size(), tc.hidden_act == "gelu", s.act.data());
  s.m.resize(x.size());
  A.linear_fwd(s.act.data(), T, I, lp + "mlp.down_proj.weight", nullptr, H, s.m.data());
  add_branch(A, P, l, kMlpBranch, s.m, s.m_norm_rstd, s.mlp_keep, x);
}

// The backward of text_layer_forward: dx (the gradient of the layer's output) becomes the
// gradient of its input; parameter gradients are added.
void text_layer_backward(const Access& A, const TextPass& P, int l, const TextLayerState& s, Buf& dx) {
  const TextConfig& tc = P.tc;
  const int T = P.T, H = tc.hidden_size, I = tc.intermediate_size, D = tc.head_dim;
  const int q_dim = tc.num_heads * D, kv_dim = tc.num_kv_heads * D;
  const std::string lp = text_layer(l);
  // MLP branch: its output (after the dropout mask) was added to the residual.
  const Buf dm = branch_backward(A, P, l, kMlpBranch, s.m, s.m_norm_rstd, s.mlp_keep, dx);
  Buf dact(s.act.size(), 0.0f);
  A.linear_bwd(dm.data(), s.act.data(), lp + "mlp.down_proj.weight", T, I, H, dact.data(), nullptr);
  Buf dgate(s.gate.size(), 0.0f), dup(s.up.size(), 0.0f);
  geglu_backward(dact.data(), s.gate.data(), s.up.data(), s.gate.size(), tc.hidden_act == "gelu", dgate.data(),
                 dup.data());
  Buf dh(dx.size(), 0.0f);
  A.linear_bwd(dgate.data(), s.h2.data(), lp + "mlp.gate_proj.weight", T, H, I, dh.data(), nullptr);
  A.linear_bwd(dup.data(), s.h2.data(), lp + "mlp.up_proj.weight", T, H, I, dh.data(), nullptr);
  rms_norm_backward(dh.data(), s.x_mid.data(), T, H, A.w(lp + P.mlp_norm()), s.rstd2.data(), dx.data(),
                    A.d(lp + P.mlp_norm()));
  // Attention branch.
  const Buf dnorm = branch_backward(A, P, l, kAttentionBranch, s.o, s.o_norm_rstd, s.attn_keep, dx);
  Buf dattn(s.attn.size(), 0.0f);
  A.linear_bwd(dnorm.data(), s.attn.data(), lp + "self_attn.o_proj.weight", T, q_dim, H, dattn.data(), nullptr);
  Buf dq(s.q.size(), 0.0f), dk(s.k.size(), 0.0f), dv(s.v.size(), 0.0f);
  attention_backward(dattn.data(), s.q.data(), s.k.data(), s.v.data(), T, P.shape, P.mask(l), s.saved, dq.data(),
                     dk.data(), dv.data());
  rope_backward(dq.data(), T, tc.num_heads, D, P.cos_t, P.sin_t);
  rope_backward(dk.data(), T, tc.num_kv_heads, D, P.cos_t, P.sin_t);
  std::fill(dh.begin(), dh.end(), 0.0f);
  A.linear_bwd(dq.data(), s.h1.data(), lp + "self_attn.q_proj.weight", T, H, q_dim, dh.data(), nullptr);
  A.linear_bwd(dk.data(), s.h1.data(), lp + "self_attn.k_proj.weight", T, H, kv_dim, dh.data(), nullptr);
  A.linear_bwd(dv.data(), s.h1.data(), lp + "self_attn.v_proj.weight", T, H, kv_dim, dh.data(), nullptr);
  rms_norm_backward(dh.data(), s.x_in.data(), T, H, A.w(lp + "input_layernorm.weight"), s.rstd1.data(), dx.data(),
                    A.d(lp + "input_layernorm.weight"));
}

}  // namespace

LossResult loss_and_gradients(const Parameters& params, const ModelConfig& c, const std::vector<TrainExample>& batch,
                              const LossOptions& options, Parameters* grads, const LoraAdapters* lora,
                              Parameters* lora_grads) {
  Access A{params, grads, lora, lora_grads};
  const bool backward = grads || lora_grads;
  const TextConfig& tc = c.text;
  const int H = tc.hidden_size, V = tc.vocab_size, D = tc.head_dim;
  const bool gemma2 = tc.arch == TextArch::Gemma2;
  const int image_rows = c.image_tokens_per_image();
  const size_t image_pixels = static_cast<size_t>(c.vision.num_channels) * c.vision.image_size * c.vision.image_size;
  const std::string tp = "language_model.model.";
  const std::string out_name =
      params.has("language_model.lm_head.weight") ? "language_model.lm_head.weight" : tp + "embed_tokens.weight";
  const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(H)));
  const bool cap = gemma2 && options.final_logit_softcap && tc.final_logit_softcap > 0.0f;

  LossResult result;
  for (const TrainExample& ex : batch) result.tokens += std::max(0, ex.num_targets());
  if (result.tokens == 0) throw Error("training batch has no target (suffix) tokens");

  kernels::AttentionShape shape;
  shape.num_heads = tc.num_heads;
  shape.num_kv_heads = tc.num_kv_heads;
  shape.head_dim = D;
  shape.scale = tc.query_scale();
  shape.softcap = gemma2 ? tc.attn_logit_softcap : 0.0f;

  if (options.dropout < 0.0f || options.dropout >= 1.0f)
    throw Error("dropout must be in [0, 1), got " + std::to_string(options.dropout));
  if (options.lora_dropout < 0.0f || options.lora_dropout >= 1.0f)
    throw Error("LoRA dropout must be in [0, 1), got " + std::to_string(options.lora_dropout));
  A.lora_dropout = options.lora_dropout;
  // The vision tower's backward runs only when some of it (or the projector) trains.
  bool vision_trains = false;
  for (const Parameters* g : {grads, lora_grads})
    if (g)
      for (const auto& [name, t] : g->tensors())
        vision_trains |= name.rfind("vision_tower.", 0) == 0 || name.rfind("multi_modal_projector.", 0) == 0;
  // LoRA dropout streams: one per example for the decoder, one per image for the tower.
  const auto lora_stream = [&](size_t b, uint64_t part) {
    return (options.dropout_seed + 1) * 0xD6E8FEB86659FD93ull + (static_cast<uint64_t>(b) << 20) + part;
  };
  std::vector<int> n_images_of(batch.size());
  for (size_t b = 0; b < batch.size(); ++b) {
    const TrainExample& ex = batch[b];
    const int T = static_cast<int>(ex.ids.size());
    if (ex.prefix_len < 1 || ex.num_targets() < 1)
      throw Error("training example needs a prefix and at least one suffix token (got " + std::to_string(T) +
                  " tokens, prefix " + std::to_string(ex.prefix_len) + ")");
    int images = 0;
    for (int id : ex.ids) images += id == c.image_token_index;
    if (images % image_rows != 0 || ex.pixels.size() != static_cast<size_t>(images / image_rows) * image_pixels)
      throw Error("training example has " + std::to_string(images) + " <image> tokens and " +
                  std::to_string(ex.pixels.size()) + " pixel values; each image needs " + std::to_string(image_rows) +
                  " tokens and " + std::to_string(image_pixels) + " values");
    n_images_of[b] = images / image_rows;
  }
  const Keep vision_keep = keep_for(backward && vision_trains, options.checkpoint_layers);
  // Groups (LossOptions::vision_group_bytes) sized as if every activation were kept when the
  // tower trains, whatever is: then gradient checkpointing forms the same groups, sums in the
  // same order and gives the same gradients bit for bit.
  const size_t image_bytes =
      vision_bytes_per_image(c.vision, vision_keep == Keep::Nothing ? Keep::Nothing : Keep::Everything);
  const size_t feature_values = static_cast<size_t>(image_rows) * H;

  // Examples go in groups: the tower runs once on all of a group's images, then each example's
  // decoder forward and backward, then the tower's backward on the group's feature gradients.
  for (size_t g0 = 0; g0 < batch.size();) {
    size_t g1 = g0 + 1;
    size_t group_images = n_images_of[g0];
    while (g1 < batch.size() && (group_images + n_images_of[g1]) * image_bytes <= options.vision_group_bytes)
      group_images += n_images_of[g1++];
    std::vector<size_t> first_image(g1 - g0);  // each example's first image within the group
    Buf group_pixels;
    std::vector<uint64_t> image_streams;  // LoRA dropout: each image's own stream
    for (size_t b = g0, at = 0; b < g1; at += n_images_of[b++]) {
      first_image[b - g0] = at;
      group_pixels.insert(group_pixels.end(), batch[b].pixels.begin(), batch[b].pixels.end());
      for (int i = 0; i < n_images_of[b]; ++i) image_streams.push_back(lora_stream(b, 1 + static_cast<uint64_t>(i)));
    }
    Buf features, dfeatures;
    VisionState vstate;
    if (group_images > 0) {
      A.lora_image_streams = image_streams;
      features = vision_forward(A, c, group_pixels.data(), static_cast<int>(group_images), vision_keep, vstate);
      A.lora_image_streams.clear();
    }
    if (backward && vision_trains) dfeatures.assign(features.size(), 0.0f);

    for (size_t b = g0; b < g1; ++b) {
      const TrainExample& ex = batch[b];
      const int T = static_cast<int>(ex.ids.size());
      const int targets_n = ex.num_targets();
      const float* ex_features = features.data() + first_image[b - g0] * feature_values;
      A.lora_stream = lora_stream(b, 0);

      // Embedding: image rows take the projected features (transformers scales them by
      // 1 / sqrt(H) and the decoder multiplies every row by sqrt(H)); text rows E[id] sqrt(H).
      Buf x(static_cast<size_t>(T) * H);
      for (int t = 0, img = 0; t < T; ++t) {
        float* row = x.data() + static_cast<int64_t>(t) * H;
        const int id = ex.ids[t];
        if (id == c.image_token_index) {
          std::copy_n(ex_features + static_cast<int64_t>(img) * H, H, row);
          ++img;
          continue;
        }
        if (id < 0 || id >= V) throw Error("token id " + std::to_string(id) + " is outside the vocabulary");
        if (const kernels::WeightMatrix* v = params.view(tp + "embed_tokens.weight")) {
          kernels::dequantize_rows_f32(*v, id, 1, row);
          for (int i = 0; i < H; ++i) row[i] *= normalizer;
          continue;
        }
        const float* e = A.w(tp + "embed_tokens.weight") + static_cast<int64_t>(id) * H;
        for (int i = 0; i < H; ++i) row[i] = e[i] * normalizer;
      }

      // RoPE tables: PaliGemma numbers positions from 1.
      Buf cos_t(static_cast<size_t>(T) * (D / 2)), sin_t(cos_t.size());
      for (int t = 0; t < T; ++t)
        kernels::rope_angles(t + 1, D, tc.rope_theta, cos_t.data() + t * (D / 2), sin_t.data() + t * (D / 2));

      TextPass P{tc, options, shape, T, ex.prefix_len, cos_t.data(), sin_t.data(), static_cast<uint64_t>(b)};
      const Keep keep = keep_for(backward, options.checkpoint_layers);
      std::vector<TextLayerState> layers(keep == Keep::Everything ? tc.num_layers : 1);
      std::vector<Buf> inputs(keep == Keep::LayerInputs ? tc.num_layers : 0);
      for (int l = 0; l < tc.num_layers; ++l) {
        if (keep == Keep::LayerInputs) inputs[l] = x;
        text_layer_forward(A, P, l, x, layers[keep == Keep::Everything ? l : 0]);
      }
      if (keep != Keep::Everything) layers.front() = TextLayerState{};

      // Final norm and output layer on the rows that predict a target: row t predicts ids[t + 1].
      const int first = ex.prefix_len - 1, R = targets_n;
      Buf xf(x.begin() + static_cast<int64_t>(first) * H, x.begin() + static_cast<int64_t>(first + R) * H);
      Buf hf(xf.size()), rstd_f(R), logits(static_cast<size_t>(R) * V);
      rms_norm_forward(xf.data(), R, H, A.w(tp + "norm.weight"), tc.rms_norm_eps, hf.data(), rstd_f.data());
      A.linear_fwd(hf.data(), R, H, out_name, nullptr, V, logits.data());
      Buf capped;
      if (cap) {
        capped.resize(logits.size());
        soft_cap_forward(logits.data(), logits.size(), tc.final_logit_softcap, capped.data());
      }
      const Buf& z = cap ? capped : logits;
      std::vector<int> targets(R);
      for (int r = 0; r < R; ++r) targets[r] = ex.ids[first + r + 1];
      const int token_count = options.total_tokens > 0 ? options.total_tokens : result.tokens;
      const float w =
          static_cast<float>(options.scale * (options.reduction == LossReduction::PerExample
                                                  ? 1.0 / (static_cast<double>(R) * static_cast<double>(batch.size()))
                                                  : 1.0 / static_cast<double>(token_count)));
      const Buf weights(R, w), unit(R, 1.0f / static_cast<float>(R));
      result.example_loss.push_back(
          cross_entropy<float>(z.data(), R, V, targets.data(), unit.data(), options.label_smoothing, nullptr));
      if (!backward) {
        result.loss +=
            cross_entropy<float>(z.data(), R, V, targets.data(), weights.data(), options.label_smoothing, nullptr);
        continue;
      }
      Buf dz(z.size());
      result.loss +=
          cross_entropy<float>(z.data(), R, V, targets.data(), weights.data(), options.label_smoothing, dz.data());

      // ---- backward
      Buf dlogits;
      if (cap) {
        dlogits.assign(dz.size(), 0.0f);
        soft_cap_backward(dz.data(), capped.data(), dz.size(), tc.final_logit_softcap, dlogits.data());
      } else {
        dlogits.swap(dz);
      }
      Buf dhf(hf.size(), 0.0f), dx(x.size(), 0.0f);
      A.linear_bwd(dlogits.data(), hf.data(), out_name, R, H, V, dhf.data(), nullptr);
      rms_norm_backward(dhf.data(), xf.data(), R, H, A.w(tp + "norm.weight"), rstd_f.data(),
                        dx.data() + static_cast<int64_t>(first) * H, A.d(tp + "norm.weight"));

      for (int l = tc.num_layers - 1; l >= 0; --l) {
        if (keep == Keep::LayerInputs) {  // recompute this layer's activations from its input
          Buf xl = std::move(inputs[l]);
          text_layer_forward(A, P, l, xl, layers[0]);
        }
        text_layer_backward(A, P, l, layers[keep == Keep::Everything ? l : 0], dx);
      }

      // Embedding rows and image features.
      float* ex_dfeatures = dfeatures.empty() ? nullptr : dfeatures.data() + first_image[b - g0] * feature_values;
      float* dembed = A.d(tp + "embed_tokens.weight");
      for (int t = 0, img = 0; t < T; ++t) {
        const float* g = dx.data() + static_cast<int64_t>(t) * H;
        if (ex.ids[t] == c.image_token_index) {
          if (ex_dfeatures) add_into(ex_dfeatures + static_cast<int64_t>(img) * H, g, H);
          ++img;
        } else if (dembed) {
          float* e = dembed + static_cast<int64_t>(ex.ids[t]) * H;
          for (int i = 0; i < H; ++i) e[i] += g[i] * normalizer;
        }
      }
    }
    if (!dfeatures.empty()) {
      A.lora_image_streams = image_streams;
      vision_backward(A, c, vstate, dfeatures.data());
      A.lora_image_streams.clear();
    }
    g0 = g1;
  }
  return result;
}

}  // namespace pg::train
