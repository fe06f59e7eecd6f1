// The SigLIP encoder layer and vision transformer of the training code (forward with saved
// activations, backward), shared by PaliGemma's loss (paligemma_grad.cpp) and SigLIP
// contrastive pretraining (siglip_pretrain.cpp).
#include "train/encoder_layer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "paligemma/error.h"

namespace pg::train {

void add_into(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

Keep keep_for(bool backward, bool checkpoint) {
  if (!backward) return Keep::Nothing;
  return checkpoint ? Keep::LayerInputs : Keep::Everything;
}

EncoderShape encoder_shape(const VisionConfig& vc) {
  return {vc.hidden_size, vc.num_heads, vc.intermediate_size, vc.layer_norm_eps, vc.hidden_act};
}

namespace {

kernels::AttentionShape attention_shape(const EncoderShape& e) {
  const int head_dim = e.hidden / e.heads;
  kernels::AttentionShape s;
  s.num_heads = e.heads;
  s.num_kv_heads = e.heads;
  s.head_dim = head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return s;
}

std::string vision_layer(int l) { return "vision_tower.vision_model.encoder.layers." + std::to_string(l) + "."; }

}  // namespace

void encoder_layer_forward(const Access& A, const EncoderShape& e, const std::string& lp, int N, int sequences, Buf& x,
                           EncoderLayerState& s) {
  const int Hv = e.hidden, Iv = e.intermediate;
  const kernels::AttentionShape shape = attention_shape(e);
  kernels::AttentionMask bidirectional;
  bidirectional.causal = false;
  Buf tmp(x.size());
  s.x_in = x;
  s.h1.resize(x.size());
  s.mean1.resize(N);
  s.rstd1.resize(N);
  layer_norm_forward(x.data(), N, Hv, A.w(lp + "layer_norm1.weight"), A.w(lp + "layer_norm1.bias"), e.eps, s.h1.data(),
                     s.mean1.data(), s.rstd1.data());
  s.q.resize(x.size());
  s.k.resize(x.size());
  s.v.resize(x.size());
  A.linear_fwd(s.h1.data(), N, Hv, lp + "self_attn.q_proj.weight", A.w(lp + "self_attn.q_proj.bias"), Hv, s.q.data());
  A.linear_fwd(s.h1.data(), N, Hv, lp + "self_attn.k_proj.weight", A.w(lp + "self_attn.k_proj.bias"), Hv, s.k.data());
  A.linear_fwd(s.h1.data(), N, Hv, lp + "self_attn.v_proj.weight", A.w(lp + "self_attn.v_proj.bias"), Hv, s.v.data());
  s.attn.resize(x.size());
  const int L = N / sequences;
  const size_t seq_values = static_cast<size_t>(L) * Hv;
  s.saved.resize(sequences);
  for (int j = 0; j < sequences; ++j)
    attention_forward(s.q.data() + j * seq_values, s.k.data() + j * seq_values, s.v.data() + j * seq_values, L, shape,
                      bidirectional, s.attn.data() + j * seq_values, &s.saved[j]);
  A.linear_fwd(s.attn.data(), N, Hv, lp + "self_attn.out_proj.weight", A.w(lp + "self_attn.out_proj.bias"), Hv,
               tmp.data());
  add_into(x.data(), tmp.data(), x.size());
  s.x_mid = x;
  s.h2.resize(x.size());
  s.mean2.resize(N);
  s.rstd2.resize(N);
  layer_norm_forward(x.data(), N, Hv, A.w(lp + "layer_norm2.weight"), A.w(lp + "layer_norm2.bias"), e.eps, s.h2.data(),
                     s.mean2.data(), s.rstd2.data());
  s.u.resize(static_cast<size_t>(N) * Iv);
  s.a.resize(s.u.size());
  A.linear_fwd(s.h2.data(), N, Hv, lp + "mlp.fc1.weight", A.w(lp + "mlp.fc1.bias"), Iv, s.u.data());
  if (e.act == "gelu")
    gelu_erf_forward(s.u.data(), s.u.size(), s.a.data());
  else
    gelu_tanh_forward(s.u.data(), s.u.size(), s.a.data());
  A.linear_fwd(s.a.data(), N, Iv, lp + "mlp.fc2.weight", A.w(lp + "mlp.fc2.bias"), Hv, tmp.data());
  add_into(x.data(), tmp.data(), x.size());
}

void encoder_layer_backward(const Access& A, const EncoderShape& e, const std::string& lp, int N, int sequences,
                            const EncoderLayerState& s, Buf& dx) {
  const int Hv = e.hidden, Iv = e.intermediate;
  const kernels::AttentionShape shape = attention_shape(e);
  kernels::AttentionMask bidirectional;
  bidirectional.causal = false;
  // x_out = x_mid + fc2(gelu(fc1(ln2(x_mid)))): dx flows to x_mid directly and through the MLP.
  Buf da(s.a.size(), 0.0f);
  A.linear_bwd(dx.data(), s.a.data(), lp + "mlp.fc2.weight", N, Iv, Hv, da.data(), A.d(lp + "mlp.fc2.bias"));
  Buf du(s.u.size(), 0.0f);
  if (e.act == "gelu")
    gelu_erf_backward(da.data(), s.u.data(), s.u.size(), du.data());
  else
    gelu_tanh_backward(da.data(), s.u.data(), s.u.size(), du.data());
  Buf dh(dx.size(), 0.0f);
  A.linear_bwd(du.data(), s.h2.data(), lp + "mlp.fc1.weight", N, Hv, Iv, dh.data(), A.d(lp + "mlp.fc1.bias"));
  layer_norm_backward(dh.data(), s.x_mid.data(), N, Hv, A.w(lp + "layer_norm2.weight"), s.mean2.data(), s.rstd2.data(),
                      dx.data(), A.d(lp + "layer_norm2.weight"), A.d(lp + "layer_norm2.bias"));
  // x_mid = x_in + out_proj(attention(q, k, v)), q/k/v = proj(ln1(x_in)).
  Buf dattn(dx.size(), 0.0f), dq(dx.size(), 0.0f), dk(dx.size(), 0.0f), dv(dx.size(), 0.0f);
  A.linear_bwd(dx.data(), s.attn.data(), lp + "self_attn.out_proj.weight", N, Hv, Hv, dattn.data(),
               A.d(lp + "self_attn.out_proj.bias"));
  const int L = N / sequences;
  const size_t seq_values = static_cast<size_t>(L) * Hv;
  for (int j = 0; j < sequences; ++j)
    attention_backward(dattn.data() + j * seq_values, s.q.data() + j * seq_values, s.k.data() + j * seq_values,
                       s.v.data() + j * seq_values, L, shape, bidirectional, s.saved[j], dq.data() + j * seq_values,
                       dk.data() + j * seq_values, dv.data() + j * seq_values);
  std::fill(dh.begin(), dh.end(), 0.0f);
  for (const auto& [proj, grad] : {std::pair{"q", &dq}, std::pair{"k", &dk}, std::pair{"v", &dv}}) {
    const std::string n = lp + "self_attn." + proj + "_proj.";
    A.linear_bwd(grad->data(), s.h1.data(), n + "weight", N, Hv, Hv, dh.data(), A.d(n + "bias"));
  }
  layer_norm_backward(dh.data(), s.x_in.data(), N, Hv, A.w(lp + "layer_norm1.weight"), s.mean1.data(), s.rstd1.data(),
                      dx.data(), A.d(lp + "layer_norm1.weight"), A.d(lp + "layer_norm1.bias"));
}

const Buf& vision_tower_forward(const Access& A, const VisionConfig& vc, const float* pixels, int images, Keep keep,
                                VisionState& st) {
  const int n = vc.num_patches(), N = images * n, Hv = vc.hidden_size;
  const int PL = vc.num_channels * vc.patch_size * vc.patch_size;
  const size_t image_pixels = static_cast<size_t>(vc.num_channels) * vc.image_size * vc.image_size;
  const EncoderShape e = encoder_shape(vc);
  const std::string vp = "vision_tower.vision_model.";
  st.keep = keep;
  st.images = images;
  st.patches.resize(static_cast<size_t>(N) * PL);
  for (int i = 0; i < images; ++i)
    kernels::patchify(pixels + i * image_pixels, vc.num_channels, vc.image_size, vc.patch_size,
                      st.patches.data() + static_cast<size_t>(i) * n * PL);
  // SiglipVisionEmbeddings: conv (as a matmul) + bias, then + position embedding.
  Buf x(static_cast<size_t>(N) * Hv);
  A.linear_fwd(st.patches.data(), N, PL, vp + "embeddings.patch_embedding.weight",
               A.w(vp + "embeddings.patch_embedding.bias"), Hv, x.data());
  const float* pos = A.w(vp + "embeddings.position_embedding.weight");
  for (int i = 0; i < images; ++i)
    add_into(x.data() + static_cast<size_t>(i) * n * Hv, pos, static_cast<size_t>(n) * Hv);
  st.layers.resize(keep == Keep::Everything ? vc.num_layers : 1);
  if (keep == Keep::LayerInputs) st.inputs.resize(vc.num_layers);
  for (int l = 0; l < vc.num_layers; ++l) {
    if (keep == Keep::LayerInputs) st.inputs[l] = x;
    encoder_layer_forward(A, e, vision_layer(l), N, images, x, st.layers[keep == Keep::Everything ? l : 0]);
  }
  if (keep != Keep::Everything) st.layers.front() = EncoderLayerState{};  // the scratch layer is not needed now
  st.x_last = x;
  st.post.resize(x.size());
  st.post_mean.resize(N);
  st.post_rstd.resize(N);
  layer_norm_forward(x.data(), N, Hv, A.w(vp + "post_layernorm.weight"), A.w(vp + "post_layernorm.bias"),
                     vc.layer_norm_eps, st.post.data(), st.post_mean.data(), st.post_rstd.data());
  return st.post;
}

size_t vision_bytes_per_image(const VisionConfig& vc, Keep keep) {
  const size_t n = vc.num_patches(), Hv = vc.hidden_size, Iv = vc.intermediate_size, layers = vc.num_layers;
  const size_t per_layer = n * (8 * Hv + 2 * Iv + 4 + static_cast<size_t>(vc.num_heads) * n) * sizeof(float);
  const size_t always =
      n * (5 * Hv + static_cast<size_t>(vc.num_channels) * vc.patch_size * vc.patch_size) * sizeof(float);
  switch (keep) {
    case Keep::Everything:
      return always + layers * per_layer;
    case Keep::LayerInputs:
      return always + layers * n * Hv * sizeof(float) + per_layer;
    case Keep::Nothing:
      break;
  }
  return always;
}

void vision_tower_backward(const Access& A, const VisionConfig& vc, VisionState& st, const float* dpost) {
  if (st.keep == Keep::Nothing) throw Error("internal: the vision forward kept nothing for its backward");
  const int n = vc.num_patches(), N = st.images * n, Hv = vc.hidden_size;
  const int PL = vc.num_channels * vc.patch_size * vc.patch_size;
  const EncoderShape e = encoder_shape(vc);
  const std::string vp = "vision_tower.vision_model.";
  Buf dx(static_cast<size_t>(N) * Hv, 0.0f);
  layer_norm_backward(dpost, st.x_last.data(), N, Hv, A.w(vp + "post_layernorm.weight"), st.post_mean.data(),
                      st.post_rstd.data(), dx.data(), A.d(vp + "post_layernorm.weight"),
                      A.d(vp + "post_layernorm.bias"));
  for (int l = vc.num_layers - 1; l >= 0; --l) {
    if (st.keep == Keep::LayerInputs) {  // recompute this layer's activations from its input
      Buf x = std::move(st.inputs[l]);
      encoder_layer_forward(A, e, vision_layer(l), N, st.images, x, st.layers[0]);
    }
    encoder_layer_backward(A, e, vision_layer(l), N, st.images, st.layers[st.keep == Keep::Everything ? l : 0], dx);
  }
  // Embeddings: x0 = patches W^T + b + position (the same table for every image).
  if (float* dpos = A.d(vp + "embeddings.position_embedding.weight"))
    for (int i = 0; i < st.images; ++i)
      add_into(dpos, dx.data() + static_cast<size_t>(i) * n * Hv, static_cast<size_t>(n) * Hv);
  A.linear_bwd(dx.data(), st.patches.data(), vp + "embeddings.patch_embedding.weight", N, PL, Hv, nullptr,
               A.d(vp + "embeddings.patch_embedding.bias"));
}

}  // namespace pg::train
