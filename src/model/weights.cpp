#include "model/weights.h"

#include "kernels/ops.h"

namespace pg {
namespace {

class Fetcher {
 public:
  Fetcher(const Checkpoint& ckpt) : ckpt_(ckpt) {}
  TensorView matrix(const std::string& name, std::vector<int64_t> shape) { return ckpt_.get(name, shape); }
  Vec vec(const std::string& name, int64_t n) {
    const TensorView& t = ckpt_.get(name, {n});
    Vec out;
    out.v.resize(n);
    kernels::to_f32(t, out.v.data());
    return out;
  }
  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
    Linear l;
    l.weight = matrix(prefix + ".weight", {out, in});
    if (bias) l.bias = ckpt_.get(prefix + ".bias", {out});
    return l;
  }

 private:
  const Checkpoint& ckpt_;
};

}  // namespace

std::unique_ptr<Model::Weights> load_weights(const Checkpoint& ckpt, const ModelConfig& c) {
  auto w = std::make_unique<Model::Weights>();
  Fetcher f(ckpt);
  const auto& vc = c.vision;
  const int64_t Hv = vc.hidden_size, Iv = vc.intermediate_size, P = vc.patch_size;
  const std::string vp = "vision_tower.vision_model.";
  w->patch_w = f.matrix(vp + "embeddings.patch_embedding.weight", {Hv, vc.num_channels, P, P});
  w->patch_b = f.vec(vp + "embeddings.patch_embedding.bias", Hv);
  w->position = f.matrix(vp + "embeddings.position_embedding.weight", {vc.num_patches(), Hv});
  for (int i = 0; i < vc.num_layers; ++i) {
    const std::string lp = vp + "encoder.layers." + std::to_string(i) + ".";
    VisionLayer L;
    L.ln1_w = f.vec(lp + "layer_norm1.weight", Hv);
    L.ln1_b = f.vec(lp + "layer_norm1.bias", Hv);
    L.ln2_w = f.vec(lp + "layer_norm2.weight", Hv);
    L.ln2_b = f.vec(lp + "layer_norm2.bias", Hv);
    L.q = f.linear(lp + "self_attn.q_proj", Hv, Hv, true);
    L.k = f.linear(lp + "self_attn.k_proj", Hv, Hv, true);
    L.v = f.linear(lp + "self_attn.v_proj", Hv, Hv, true);
    L.out = f.linear(lp + "self_attn.out_proj", Hv, Hv, true);
    L.fc1 = f.linear(lp + "mlp.fc1", Iv, Hv, true);
    L.fc2 = f.linear(lp + "mlp.fc2", Hv, Iv, true);
    w->vision.push_back(std::move(L));
  }
  w->post_ln_w = f.vec(vp + "post_layernorm.weight", Hv);
  w->post_ln_b = f.vec(vp + "post_layernorm.bias", Hv);
  w->projector = f.linear("multi_modal_projector.linear", c.projection_dim, Hv, true);

  const auto& tc = c.text;
  const int64_t H = tc.hidden_size, I = tc.intermediate_size, V = tc.vocab_size;
  const int64_t q_dim = static_cast<int64_t>(tc.num_heads) * tc.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(tc.num_kv_heads) * tc.head_dim;
  const std::string tp = "language_model.model.";
  w->embed = f.matrix(tp + "embed_tokens.weight", {V, H});
  for (int i = 0; i < tc.num_layers; ++i) {
    const std::string lp = tp + "layers." + std::to_string(i) + ".";
    TextLayer L;
    L.q = f.linear(lp + "self_attn.q_proj", q_dim, H, false);
    L.k = f.linear(lp + "self_attn.k_proj", kv_dim, H, false);
    L.v = f.linear(lp + "self_attn.v_proj", kv_dim, H, false);
    L.o = f.linear(lp + "self_attn.o_proj", H, q_dim, false);
    L.gate = f.linear(lp + "mlp.gate_proj", I, H, false);
    L.up = f.linear(lp + "mlp.up_proj", I, H, false);
    L.down = f.linear(lp + "mlp.down_proj", H, I, false);
    L.input_norm = f.vec(lp + "input_layernorm.weight", H);
    L.post_attn_norm = f.vec(lp + "post_attention_layernorm.weight", H);
    if (tc.arch == TextArch::Gemma2) {
      L.pre_ffw_norm = f.vec(lp + "pre_feedforward_layernorm.weight", H);
      L.post_ffw_norm = f.vec(lp + "post_feedforward_layernorm.weight", H);
    }
    w->text.push_back(std::move(L));
  }
  w->final_norm = f.vec(tp + "norm.weight", H);
  // lm_head is tied to the embedding; a checkpoint may still store it (then it is used).
  w->lm_head = ckpt.has("language_model.lm_head.weight") ? f.matrix("language_model.lm_head.weight", {V, H})
                                                          : w->embed;
  return w;
}

}  // namespace pg
