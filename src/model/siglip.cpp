// SigLIP vision tower + PaliGemma's linear projector (transformers SiglipVisionTransformer,
// PaliGemmaMultiModalProjector): conv patch embedding (as a matmul over im2col patches),
// learned position embedding, pre-LayerNorm encoder blocks with bidirectional attention,
// post LayerNorm, then Linear(vision hidden -> text hidden). No class token, no pooling head.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/weights.h"
#include "paligemma/profile.h"

namespace pg {
namespace {

// [rows, heads*dim] -> [heads][rows][dim], the layout the attention kernel reads keys in.
void split_heads(const float* x, int rows, int heads, int dim, float* out) {
  for (int h = 0; h < heads; ++h)
    for (int r = 0; r < rows; ++r)
      std::copy_n(x + (static_cast<int64_t>(r) * heads + h) * dim, dim,
                  out + (static_cast<int64_t>(h) * rows + r) * dim);
}

}  // namespace

std::vector<float> Model::encode_image(const float* pixels, std::vector<float>* vision_hidden) const {
  const VisionConfig& vc = config_.vision;
  const Weights& w = *weights_;
  const int S = vc.image_size, P = vc.patch_size, N = vc.num_patches();
  const int C = vc.num_channels, Hv = vc.hidden_size, Iv = vc.intermediate_size;
  const int patch_len = C * P * P;

  std::vector<float> patches(static_cast<size_t>(N) * patch_len);
  kernels::patchify(pixels, C, S, P, patches.data());
  std::vector<float> x(static_cast<size_t>(N) * Hv);
  kernels::matmul(patches.data(), N, w.patch_w, nullptr, x.data());
  std::vector<float> pos_row(Hv);
  for (int n = 0; n < N; ++n) {
    convert_to_f32(w.position.dtype, w.position.data, static_cast<size_t>(n) * Hv, Hv, pos_row.data());
    float* row = x.data() + static_cast<int64_t>(n) * Hv;
    for (int i = 0; i < Hv; ++i) row[i] = row[i] + w.patch_b.v[i] + pos_row[i];
  }

  kernels::AttentionShape shape;
  shape.num_heads = vc.num_heads;
  shape.num_kv_heads = vc.num_heads;
  shape.head_dim = vc.head_dim();
  shape.scale = 1.0f / std::sqrt(static_cast<float>(vc.head_dim()));
  kernels::AttentionMask bidirectional;
  bidirectional.causal = false;

  std::vector<float> h(x.size()), q(x.size()), k(x.size()), v(x.size()), kh(x.size()), vh(x.size()),
      attn(x.size()), mlp(static_cast<size_t>(N) * Iv);
  for (const VisionLayer& L : w.vision) {
    h = x;
    kernels::layer_norm(h.data(), N, Hv, L.ln1_w.data(), L.ln1_b.data(), vc.layer_norm_eps);
    apply_linear(L.q, h.data(), N, q.data());
    apply_linear(L.k, h.data(), N, k.data());
    apply_linear(L.v, h.data(), N, v.data());
    split_heads(k.data(), N, vc.num_heads, vc.head_dim(), kh.data());
    split_heads(v.data(), N, vc.num_heads, vc.head_dim(), vh.data());
    {
      profile::Scope scope("attention.vision");
      kernels::attention(q.data(), N, 0, kernels::KVView{kh.data(), vh.data(), DType::F32, N}, N, shape,
                         bidirectional, attn.data());
    }
    apply_linear(L.out, attn.data(), N, h.data());
    kernels::add(x.data(), h.data(), x.size());

    h = x;
    kernels::layer_norm(h.data(), N, Hv, L.ln2_w.data(), L.ln2_b.data(), vc.layer_norm_eps);
    apply_linear(L.fc1, h.data(), N, mlp.data());
    if (vc.hidden_act == "gelu")
      kernels::gelu_erf(mlp.data(), mlp.size());
    else
      kernels::gelu_tanh(mlp.data(), mlp.size());
    apply_linear(L.fc2, mlp.data(), N, h.data());
    kernels::add(x.data(), h.data(), x.size());
  }
  kernels::layer_norm(x.data(), N, Hv, w.post_ln_w.data(), w.post_ln_b.data(), vc.layer_norm_eps);
  if (vision_hidden) *vision_hidden = x;

  std::vector<float> features(static_cast<size_t>(N) * config_.projection_dim);
  apply_linear(w.projector, x.data(), N, features.data());
  return features;
}

}  // namespace pg
