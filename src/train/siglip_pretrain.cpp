// SigLIP contrastive pretraining: transformers' SiglipModel (modeling_siglip.py) forward and
// backward on the trainer's Parameters, and the training loop behind `paligemma pretrain-vision`.
#include "train/siglip_pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/duration.h"
#include "core/random.h"
#include "paligemma/checkpoint.h"
#include "paligemma/error.h"
#include "paligemma/tokenizer.h"
#include "train/checkpoint_io.h"
#include "train/dataset.h"
#include "train/layers.h"
#include "train/optimizer.h"

namespace pg::train {
namespace fs = std::filesystem;

namespace {

const std::string kVision = "vision_tower.vision_model.";
const std::string kHead = "vision_tower.vision_model.head.";
const std::string kText = "text_model.";

std::string text_layer(int l) { return kText + "encoder.layers." + std::to_string(l) + "."; }

bool gelu_exact(const std::string& act) { return act == "gelu"; }

// ---------------------------------------------------------------- pooling head

// SiglipMultiheadAttentionPoolingHead on one image's post_layernorm output [N, H]:
// a = out_proj(MultiheadAttention(probe, x, x)); pooled = a + fc2(gelu(fc1(layernorm(a)))).
// nn.MultiheadAttention packs q, k, v projections into in_proj_weight [3H, H] (rows q, k, v).
struct HeadState {
  Buf q, k, v, p, o, a, mean, rstd, h, u, g;
};

void head_forward(const Access& A, const SiglipShapes& s, const Buf& x, HeadState& st, float* pooled) {
  const VisionConfig& vc = s.vision;
  const int N = vc.num_patches(), H = vc.hidden_size, I = vc.intermediate_size, heads = vc.num_heads;
  const int D = H / heads;
  const float* w_in = A.w(kHead + "attention.in_proj_weight");
  const float* b_in = A.w(kHead + "attention.in_proj_bias");
  st.q.assign(H, 0.0f);
  st.k.assign(static_cast<size_t>(N) * H, 0.0f);
  st.v.assign(st.k.size(), 0.0f);
  linear_forward<float>(A.w(kHead + "probe"), 1, H, w_in, b_in, H, st.q.data());
  linear_forward<float>(x.data(), N, H, w_in + static_cast<size_t>(H) * H, b_in + H, H, st.k.data());
  linear_forward<float>(x.data(), N, H, w_in + 2 * static_cast<size_t>(H) * H, b_in + 2 * H, H, st.v.data());
  // One query row: softmax(scale q k_j) per head, then the weighted sum of v_j.
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  st.p.assign(static_cast<size_t>(heads) * N, 0.0f);
  st.o.assign(H, 0.0f);
  for (int hd = 0; hd < heads; ++hd) {
    float* p = st.p.data() + static_cast<size_t>(hd) * N;
    float top = -INFINITY;
    for (int j = 0; j < N; ++j) {
      float dot = 0;
      for (int d = 0; d < D; ++d) dot += st.q[hd * D + d] * st.k[static_cast<size_t>(j) * H + hd * D + d];
      p[j] = scale * dot;
      top = std::max(top, p[j]);
    }
    float sum = 0;
    for (int j = 0; j < N; ++j) sum += p[j] = std::exp(p[j] - top);
    for (int j = 0; j < N; ++j) p[j] /= sum;
    for (int j = 0; j < N; ++j)
      for (int d = 0; d < D; ++d) st.o[hd * D + d] += p[j] * st.v[static_cast<size_t>(j) * H + hd * D + d];
  }
  st.a.assign(H, 0.0f);
  A.linear_fwd(st.o.data(), 1, H, kHead + "attention.out_proj.weight", A.w(kHead + "attention.out_proj.bias"), H,
               st.a.data());
  st.h.assign(H, 0.0f);
  st.mean.assign(1, 0.0f);
  st.rstd.assign(1, 0.0f);
  layer_norm_forward(st.a.data(), 1, H, A.w(kHead + "layernorm.weight"), A.w(kHead + "layernorm.bias"),
                     vc.layer_norm_eps, st.h.data(), st.mean.data(), st.rstd.data());
  st.u.assign(I, 0.0f);
  st.g.assign(I, 0.0f);
  A.linear_fwd(st.h.data(), 1, H, kHead + "mlp.fc1.weight", A.w(kHead + "mlp.fc1.bias"), I, st.u.data());
  if (gelu_exact(vc.hidden_act))
    gelu_erf_forward(st.u.data(), I, st.g.data());
  else
    gelu_tanh_forward(st.u.data(), I, st.g.data());
  A.linear_fwd(st.g.data(), 1, I, kHead + "mlp.fc2.weight", A.w(kHead + "mlp.fc2.bias"), H, pooled);
  add_into(pooled, st.a.data(), H);
}

// The backward of head_forward: dpooled [H] -> dx [N, H] (added), parameter gradients added.
void head_backward(const Access& A, const SiglipShapes& s, const Buf& x, const HeadState& st, const float* dpooled,
                   float* dx) {
  const VisionConfig& vc = s.vision;
  const int N = vc.num_patches(), H = vc.hidden_size, I = vc.intermediate_size, heads = vc.num_heads;
  const int D = H / heads;
  // pooled = a + fc2(gelu(fc1(ln(a)))).
  Buf da(dpooled, dpooled + H), dg(I, 0.0f), du(I, 0.0f), dh(H, 0.0f);
  A.linear_bwd(dpooled, st.g.data(), kHead + "mlp.fc2.weight", 1, I, H, dg.data(), A.d(kHead + "mlp.fc2.bias"));
  if (gelu_exact(vc.hidden_act))
    gelu_erf_backward(dg.data(), st.u.data(), I, du.data());
  else
    gelu_tanh_backward(dg.data(), st.u.data(), I, du.data());
  A.linear_bwd(du.data(), st.h.data(), kHead + "mlp.fc1.weight", 1, H, I, dh.data(), A.d(kHead + "mlp.fc1.bias"));
  layer_norm_backward(dh.data(), st.a.data(), 1, H, A.w(kHead + "layernorm.weight"), st.mean.data(), st.rstd.data(),
                      da.data(), A.d(kHead + "layernorm.weight"), A.d(kHead + "layernorm.bias"));
  Buf d_o(H, 0.0f);
  A.linear_bwd(da.data(), st.o.data(), kHead + "attention.out_proj.weight", 1, H, H, d_o.data(),
               A.d(kHead + "attention.out_proj.bias"));
  // o = sum_j p_j v_j, p = softmax(scale q.k_j): dv_j += p_j do; ds_j = p_j (dp_j - sum p dp);
  // dq += scale sum_j ds_j k_j; dk_j += scale ds_j q.
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  Buf dq(H, 0.0f), dk(static_cast<size_t>(N) * H, 0.0f), dv(dk.size(), 0.0f), ds(N);
  for (int hd = 0; hd < heads; ++hd) {
    const float* p = st.p.data() + static_cast<size_t>(hd) * N;
    float pdp = 0;
    for (int j = 0; j < N; ++j) {
      float dp = 0;
      for (int d = 0; d < D; ++d) {
        const size_t at = static_cast<size_t>(j) * H + hd * D + d;
        dv[at] += p[j] * d_o[hd * D + d];
        dp += d_o[hd * D + d] * st.v[at];
      }
      ds[j] = dp;
      pdp += p[j] * dp;
    }
    for (int j = 0; j < N; ++j) {
      const float dsj = scale * p[j] * (ds[j] - pdp);
      for (int d = 0; d < D; ++d) {
        const size_t at = static_cast<size_t>(j) * H + hd * D + d;
        dq[hd * D + d] += dsj * st.k[at];
        dk[at] += dsj * st.q[hd * D + d];
      }
    }
  }
  const float* w_in = A.w(kHead + "attention.in_proj_weight");
  float* dw_in = A.d(kHead + "attention.in_proj_weight");
  float* db_in = A.d(kHead + "attention.in_proj_bias");
  const size_t HH = static_cast<size_t>(H) * H;
  linear_backward<float>(dq.data(), A.w(kHead + "probe"), w_in, 1, H, H, A.d(kHead + "probe"), dw_in, db_in);
  linear_backward<float>(dk.data(), x.data(), w_in + HH, N, H, H, dx, dw_in ? dw_in + HH : nullptr,
                         db_in ? db_in + H : nullptr);
  linear_backward<float>(dv.data(), x.data(), w_in + 2 * HH, N, H, H, dx, dw_in ? dw_in + 2 * HH : nullptr,
                         db_in ? db_in + 2 * H : nullptr);
}

// ---------------------------------------------------------------- image side

struct ImageState {
  VisionState tower;
  HeadState head;
};

void image_forward(const Access& A, const SiglipShapes& s, const float* pixels, Keep keep, ImageState& st,
                   float* embed) {
  const Buf& post = vision_tower_forward(A, s.vision, pixels, 1, keep, st.tower);
  head_forward(A, s, post, st.head, embed);
}

void image_backward(const Access& A, const SiglipShapes& s, ImageState& st, const float* dembed) {
  Buf dpost(st.tower.post.size(), 0.0f);
  head_backward(A, s, st.tower.post, st.head, dembed, dpost.data());
  vision_tower_backward(A, s.vision, st.tower, dpost.data());
}

// ---------------------------------------------------------------- text side

// SiglipTextTransformer: x = token_embedding[ids] + position_embedding[0..T); the encoder
// layers (no mask: SigLIP's text model attends bidirectionally); final_layer_norm; the last
// row through `head`.
struct TextState {
  std::vector<EncoderLayerState> layers;
  Buf x_last, f, mean, rstd;
};

void text_forward(const Access& A, const SiglipShapes& s, const std::vector<int>& ids, TextState& st, float* embed) {
  const int T = static_cast<int>(ids.size()), H = s.text.hidden;
  if (T < 1 || T > s.max_positions)
    throw Error("caption of " + std::to_string(T) + " tokens; the text tower takes 1 to " +
                std::to_string(s.max_positions));
  const float* tok = A.w(kText + "embeddings.token_embedding.weight");
  const float* pos = A.w(kText + "embeddings.position_embedding.weight");
  Buf x(static_cast<size_t>(T) * H);
  for (int t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= s.vocab)
      throw Error("caption token id " + std::to_string(ids[t]) + " is outside the text vocabulary");
    for (int i = 0; i < H; ++i)
      x[static_cast<size_t>(t) * H + i] =
          tok[static_cast<size_t>(ids[t]) * H + i] + pos[static_cast<size_t>(t) * H + i];
  }
  st.layers.resize(s.text_layers);
  for (int l = 0; l < s.text_layers; ++l) encoder_layer_forward(A, s.text, text_layer(l), T, 1, x, st.layers[l]);
  // The final norm is per row: only the pooled (last) row is needed.
  st.x_last.assign(x.end() - H, x.end());
  st.f.assign(H, 0.0f);
  st.mean.assign(1, 0.0f);
  st.rstd.assign(1, 0.0f);
  layer_norm_forward(st.x_last.data(), 1, H, A.w(kText + "final_layer_norm.weight"),
                     A.w(kText + "final_layer_norm.bias"), s.text.eps, st.f.data(), st.mean.data(), st.rstd.data());
  A.linear_fwd(st.f.data(), 1, H, kText + "head.weight", A.w(kText + "head.bias"), s.embed_dim(), embed);
}

void text_backward(const Access& A, const SiglipShapes& s, const std::vector<int>& ids, const TextState& st,
                   const float* dembed) {
  const int T = static_cast<int>(ids.size()), H = s.text.hidden;
  Buf df(H, 0.0f), dx(static_cast<size_t>(T) * H, 0.0f);
  A.linear_bwd(dembed, st.f.data(), kText + "head.weight", 1, H, s.embed_dim(), df.data(), A.d(kText + "head.bias"));
  layer_norm_backward(df.data(), st.x_last.data(), 1, H, A.w(kText + "final_layer_norm.weight"), st.mean.data(),
                      st.rstd.data(), dx.data() + static_cast<size_t>(T - 1) * H,
                      A.d(kText + "final_layer_norm.weight"), A.d(kText + "final_layer_norm.bias"));
  for (int l = s.text_layers - 1; l >= 0; --l) encoder_layer_backward(A, s.text, text_layer(l), T, 1, st.layers[l], dx);
  float* dtok = A.d(kText + "embeddings.token_embedding.weight");
  float* dpos = A.d(kText + "embeddings.position_embedding.weight");
  for (int t = 0; t < T; ++t) {
    const float* g = dx.data() + static_cast<size_t>(t) * H;
    if (dtok) add_into(dtok + static_cast<size_t>(ids[t]) * H, g, H);
    if (dpos) add_into(dpos + static_cast<size_t>(t) * H, g, H);
  }
}

// ---------------------------------------------------------------- initialisation

// One stream per tensor, seeded from (seed, FNV-1a of the name), as `paligemma init` does.
class TensorRng {
 public:
  TensorRng(uint64_t seed, const std::string& name) : state_(seed ^ fnv1a(name)) { splitmix64_next(state_); }
  double uniform() { return (static_cast<double>(splitmix64_next(state_) >> 11) + 1.0) * 0x1.0p-53; }  // (0, 1]
  double normal() {  // Box-Muller (one value of each pair)
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    return r * std::cos(2.0 * M_PI * uniform());
  }

 private:
  uint64_t state_;
};

struct Init {
  Parameters p;
  uint64_t seed;
  void constant(const std::string& name, std::vector<int64_t> shape, float value) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    p.add(name, Tensor{std::move(shape), std::vector<float>(static_cast<size_t>(n), value)});
  }
  void normal(const std::string& name, std::vector<int64_t> shape, double std_dev) {
    constant(name, shape, 0.0f);
    TensorRng rng(seed, name);
    for (float& x : p.at(name).data) x = static_cast<float>(std_dev * rng.normal());
  }
  // U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (torch's xavier_uniform_).
  void xavier(const std::string& name, std::vector<int64_t> shape, int64_t fan_out, int64_t fan_in) {
    constant(name, shape, 0.0f);
    TensorRng rng(seed, name);
    const double a = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    for (float& x : p.at(name).data) x = static_cast<float>(a * (2.0 * rng.uniform() - 1.0));
  }
  void layer_norm(const std::string& prefix, int64_t n) {
    constant(prefix + "weight", {n}, 1.0f);
    constant(prefix + "bias", {n}, 0.0f);
  }
  // SiglipMLP: xavier weights, biases normal(0, 1e-6).
  void mlp(const std::string& prefix, int64_t hidden, int64_t inter) {
    xavier(prefix + "fc1.weight", {inter, hidden}, inter, hidden);
    normal(prefix + "fc1.bias", {inter}, 1e-6);
    xavier(prefix + "fc2.weight", {hidden, inter}, hidden, inter);
    normal(prefix + "fc2.bias", {hidden}, 1e-6);
  }
};

// ---------------------------------------------------------------- training loop helpers

// A pair as held for the whole run: the image resized to the model's size as 8-bit RGB (a
// quarter of its f32 pixels), normalised only when its batch is built (as_example).
struct StoredPair {
  Image image;
  std::vector<int> ids;
  std::string caption;
};

ContrastiveExample as_example(const StoredPair& pair, ResizeFilter filter) {
  return ContrastiveExample{normalize_image(pair.image, filter), pair.ids, pair.caption};
}

std::vector<StoredPair> load_pairs(const std::string& path, const Tokenizer& tokenizer, const ModelConfig& config,
                                   const SiglipShapes& shapes, const PretrainConfig& pc, const char* what) {
  const Dataset data = load_jsonl(path, pc.skip_bad_lines);
  for (const BadLine& b : data.skipped)
    std::fprintf(stderr, "pretrain-vision: %s:%d: skipped: %s\n", path.c_str(), b.line, b.reason.c_str());
  std::vector<StoredPair> out;
  for (const DatasetRecord& r : data.records) {
    const std::string where = path + ":" + std::to_string(r.line) + ": ";
    if (r.images.size() != 1)
      throw Error(where + "contrastive pretraining takes one image per record, got " + std::to_string(r.images.size()));
    if (r.suffix.find_first_not_of(" \t\r\n") == std::string::npos)
      throw Error(where + "the caption (\"suffix\") is empty");
    StoredPair ex;
    try {
      ex.image = model_sized(load_image(r.images[0]), config.vision.image_size, pc.resize);
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
    ex.ids = caption_ids(tokenizer.encode(r.suffix), tokenizer.eos_id(), shapes.max_positions);
    ex.caption = r.suffix;
    out.push_back(std::move(ex));
  }
  if (!pc.quiet) std::fprintf(stderr, "pretrain-vision: %s data: %zu examples\n", what, out.size());
  return out;
}

// Every example's saved activations (when they fit kKeptActivationValues).
struct SavedBatch {
  std::vector<ImageState> images;
  std::vector<TextState> texts;
};

// About 1 GB of f32 activations: a batch below it keeps them all from the first pass; a
// larger one recomputes each example's forward in the backward (one more forward of compute,
// one example's activations in memory).
constexpr double kKeptActivationValues = 256.0 * 1024 * 1024;

// The values an example's saved activations take, summed over the batch (a bound: per layer
// about 12 rows of width H, 2 of the MLP width and the attention probabilities).
double activation_values(const SiglipShapes& s, const std::vector<ContrastiveExample>& batch) {
  const double N = s.vision.num_patches();
  double total = 0;
  for (const ContrastiveExample& ex : batch) {
    const double T = static_cast<double>(ex.ids.size());
    total += s.vision.num_layers *
             (N * (12.0 * s.vision.hidden_size + 2.0 * s.vision.intermediate_size) + s.vision.num_heads * N * N);
    total += s.text_layers * (T * (12.0 * s.text.hidden + 2.0 * s.text.intermediate) + s.text.heads * T * T);
  }
  return total;
}

// Embeddings of a set of examples; with `saved` (sized to the set), each example's activations
// for the backward.
ContrastiveResult embed_all(const Parameters& params, const SiglipShapes& s,
                            const std::vector<ContrastiveExample>& examples, SavedBatch* saved = nullptr) {
  ContrastiveResult all;
  const Access A{params, nullptr};
  const int E = s.embed_dim();
  all.image_embeds.resize(examples.size() * E);
  all.text_embeds.resize(examples.size() * E);
  for (size_t i = 0; i < examples.size(); ++i) {
    ImageState is;
    TextState ts;
    image_forward(A, s, examples[i].pixels.data(), saved ? Keep::Everything : Keep::Nothing,
                  saved ? saved->images[i] : is, all.image_embeds.data() + i * E);
    text_forward(A, s, examples[i].ids, saved ? saved->texts[i] : ts, all.text_embeds.data() + i * E);
  }
  return all;
}

Parameters subset(const Parameters& params, const std::vector<std::string>& names) {
  Parameters out;
  for (const std::string& n : names) out.add(n, params.at(n));
  return out;
}

}  // namespace

SiglipShapes siglip_shapes(const VisionConfig& vision, const TextTowerConfig& text, int vocab) {
  SiglipShapes s;
  s.vision = vision;
  s.text.hidden = text.hidden > 0 ? text.hidden : vision.hidden_size;
  s.text.heads = text.heads > 0 ? text.heads : vision.num_heads;
  s.text.intermediate = text.intermediate > 0 ? text.intermediate : vision.intermediate_size;
  s.text.eps = vision.layer_norm_eps;
  s.text.act = vision.hidden_act;
  s.text_layers = text.layers;
  s.vocab = vocab;
  s.max_positions = text.max_positions;
  if (s.text_layers < 1) throw Error("the text tower needs at least 1 layer (--text-layers)");
  if (s.text.heads < 1 || s.text.hidden % s.text.heads != 0)
    throw Error("text tower: hidden size " + std::to_string(s.text.hidden) + " is not a multiple of " +
                std::to_string(s.text.heads) + " heads");
  if (s.max_positions < 2) throw Error("text tower: --text-max-positions must be >= 2 (a token and <eos>)");
  if (vocab < 1) throw Error("text tower: empty vocabulary");
  return s;
}

std::vector<int> caption_ids(const std::vector<int>& tokens, int eos_id, int max_positions) {
  std::vector<int> ids(tokens.begin(), tokens.begin() + std::min<size_t>(tokens.size(), max_positions - 1));
  ids.push_back(eos_id);
  return ids;
}

Parameters init_contrastive_tensors(const SiglipShapes& s, uint64_t seed, double t_prime, double bias) {
  Init b{Parameters{}, seed};
  const int64_t Hv = s.vision.hidden_size, Iv = s.vision.intermediate_size;
  const int64_t Ht = s.text.hidden, It = s.text.intermediate, E = s.embed_dim();
  // Pooling head (SiglipPreTrainedModel: probe and in_proj_weight xavier, in_proj_bias 0;
  // out_proj as the encoder's attention projections: xavier, bias 0).
  b.xavier(kHead + "probe", {1, 1, Hv}, Hv, Hv);  // torch's fans of a [1, 1, H] tensor: H and H
  b.xavier(kHead + "attention.in_proj_weight", {3 * Hv, Hv}, 3 * Hv, Hv);
  b.constant(kHead + "attention.in_proj_bias", {3 * Hv}, 0.0f);
  b.xavier(kHead + "attention.out_proj.weight", {Hv, Hv}, Hv, Hv);
  b.constant(kHead + "attention.out_proj.bias", {Hv}, 0.0f);
  b.layer_norm(kHead + "layernorm.", Hv);
  b.mlp(kHead + "mlp.", Hv, Iv);
  // Text tower: embeddings as default_flax_embed_init (normal, std 1 / sqrt(width)); layers as
  // the vision encoder's; head lecun normal (here plain normal with std sqrt(1 / fan_in)).
  b.normal(kText + "embeddings.token_embedding.weight", {s.vocab, Ht}, 1.0 / std::sqrt(static_cast<double>(Ht)));
  b.normal(kText + "embeddings.position_embedding.weight", {s.max_positions, Ht},
           1.0 / std::sqrt(static_cast<double>(Ht)));
  for (int l = 0; l < s.text_layers; ++l) {
    const std::string lp = text_layer(l);
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      b.xavier(lp + "self_attn." + proj + ".weight", {Ht, Ht}, Ht, Ht);
      b.constant(lp + "self_attn." + proj + ".bias", {Ht}, 0.0f);
    }
    b.layer_norm(lp + "layer_norm1.", Ht);
    b.layer_norm(lp + "layer_norm2.", Ht);
    b.mlp(lp + "mlp.", Ht, It);
  }
  b.layer_norm(kText + "final_layer_norm.", Ht);
  b.normal(kText + "head.weight", {E, Ht}, std::sqrt(1.0 / static_cast<double>(Ht)));
  b.constant(kText + "head.bias", {E}, 0.0f);
  b.constant("logit_scale", {1}, static_cast<float>(t_prime));
  b.constant("logit_bias", {1}, static_cast<float>(bias));
  return std::move(b.p);
}

bool is_contrastive_tensor(const std::string& name) {
  return name.rfind(kHead, 0) == 0 || name.rfind(kText, 0) == 0 || name == "logit_scale" || name == "logit_bias";
}

ContrastiveResult contrastive_loss_and_gradients(const Parameters& params, const SiglipShapes& s,
                                                 const std::vector<ContrastiveExample>& batch, Parameters* grads,
                                                 bool always_recompute) {
  const int n = static_cast<int>(batch.size()), E = s.embed_dim();
  if (n < 2) throw Error("the sigmoid contrastive loss needs a batch of at least 2 pairs, got " + std::to_string(n));
  const size_t image_values = static_cast<size_t>(s.vision.num_channels) * s.vision.image_size * s.vision.image_size;
  for (const ContrastiveExample& ex : batch)
    if (ex.pixels.size() != image_values)
      throw Error("contrastive example has " + std::to_string(ex.pixels.size()) + " pixel values, the tower takes " +
                  std::to_string(image_values));
  SavedBatch saved;
  if (grads && !always_recompute && activation_values(s, batch) <= kKeptActivationValues) {
    saved.images.resize(n);
    saved.texts.resize(n);
  }
  ContrastiveResult r = embed_all(params, s, batch, saved.images.empty() ? nullptr : &saved);
  const Access A{params, grads};
  const float t_prime = A.w("logit_scale")[0], bias = A.w("logit_bias")[0];
  if (!grads) {
    r.loss = sigmoid_contrastive_loss<float>(r.image_embeds.data(), r.text_embeds.data(), n, E, t_prime, bias, nullptr,
                                             nullptr, nullptr, nullptr);
    return r;
  }
  Buf dimg(r.image_embeds.size(), 0.0f), dtxt(r.text_embeds.size(), 0.0f);
  float dt = 0, db = 0;
  r.loss = sigmoid_contrastive_loss<float>(r.image_embeds.data(), r.text_embeds.data(), n, E, t_prime, bias,
                                           dimg.data(), dtxt.data(), &dt, &db);
  if (float* g = A.d("logit_scale")) g[0] += dt;
  if (float* g = A.d("logit_bias")) g[0] += db;
  // The backward of each example from its embedding's gradient, with the activations kept by
  // the first pass, or recomputed one example at a time (the same values: the forward is
  // deterministic).
  Buf scratch(E);
  for (int i = 0; i < n; ++i) {
    if (!saved.images.empty()) {
      image_backward(A, s, saved.images[i], dimg.data() + static_cast<size_t>(i) * E);
      text_backward(A, s, batch[i].ids, saved.texts[i], dtxt.data() + static_cast<size_t>(i) * E);
      continue;
    }
    ImageState is;
    image_forward(A, s, batch[i].pixels.data(), Keep::Everything, is, scratch.data());
    image_backward(A, s, is, dimg.data() + static_cast<size_t>(i) * E);
    TextState ts;
    text_forward(A, s, batch[i].ids, ts, scratch.data());
    text_backward(A, s, batch[i].ids, ts, dtxt.data() + static_cast<size_t>(i) * E);
  }
  return r;
}

double retrieval_accuracy(const ContrastiveResult& r, const std::vector<ContrastiveExample>& batch, int dim,
                          double* chance) {
  const int n = static_cast<int>(batch.size());
  // Cosine similarity: the ranking of one image's logits exp(t') cos + b is the cosine's.
  auto normalized = [&](const std::vector<float>& e) {
    std::vector<double> out(e.begin(), e.end());
    for (int i = 0; i < n; ++i) {
      double ss = 0;
      for (int k = 0; k < dim; ++k) ss += out[static_cast<size_t>(i) * dim + k] * out[static_cast<size_t>(i) * dim + k];
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-30);
      for (int k = 0; k < dim; ++k) out[static_cast<size_t>(i) * dim + k] *= inv;
    }
    return out;
  };
  const std::vector<double> img = normalized(r.image_embeds), txt = normalized(r.text_embeds);
  int hits = 0;
  double expected = 0;
  for (int i = 0; i < n; ++i) {
    int best = 0;
    double best_sim = -INFINITY;
    int same = 0;
    for (int j = 0; j < n; ++j) {
      double sim = 0;
      for (int k = 0; k < dim; ++k)
        sim += img[static_cast<size_t>(i) * dim + k] * txt[static_cast<size_t>(j) * dim + k];
      if (sim > best_sim) best_sim = sim, best = j;
      same += batch[j].caption == batch[i].caption;
    }
    hits += batch[best].caption == batch[i].caption;
    expected += static_cast<double>(same) / n;
  }
  if (chance) *chance = expected / n;
  return static_cast<double>(hits) / n;
}

std::string hf_siglip_name(const std::string& ours) {
  return ours.rfind(kVision, 0) == 0 ? "vision_model." + ours.substr(kVision.size()) : ours;
}
std::string our_siglip_name(const std::string& hf) {
  return hf.rfind("vision_model.", 0) == 0 ? kVision + hf.substr(13) : hf;
}

PretrainSummary run_pretrain_vision(const PretrainConfig& pc) {
  if (pc.model_dir.empty()) throw Error("pretrain-vision needs --model DIR (a PaliGemma checkpoint)");
  if (pc.train_path.empty()) throw Error("pretrain-vision needs --data captions.jsonl");
  if (pc.out_dir.empty()) throw Error("pretrain-vision needs --out DIR");
  if (pc.batch_size < 2)
    throw Error("--batch-size must be >= 2: the sigmoid loss contrasts each image with the other captions (got " +
                std::to_string(pc.batch_size) + ")");
  if (pc.steps < 1) throw Error("--steps must be >= 1 (got " + std::to_string(pc.steps) + ")");
  if (pc.warmup_steps < 0) throw Error("--warmup must be >= 0");
  std::error_code ec;
  if (fs::equivalent(pc.out_dir, pc.model_dir, ec))
    throw Error("--out must differ from --model (the input checkpoint is read while the output is written)");
  const Checkpoint ckpt = Checkpoint::open(pc.model_dir);
  const ModelConfig config = load_model_config(pc.model_dir);
  if (config.vision.num_layers < 1 || !ckpt.has(kVision + "embeddings.patch_embedding.weight"))
    throw Error(pc.model_dir + " has no SigLIP vision tower (no " + kVision +
                "embeddings.patch_embedding.weight): nothing to pretrain");
  const Tokenizer tokenizer = Tokenizer::load(pc.model_dir + "/tokenizer.model");
  const SiglipShapes shapes = siglip_shapes(config.vision, pc.text, tokenizer.vocab_size());

  PretrainSummary summary;
  const std::vector<StoredPair> train = load_pairs(pc.train_path, tokenizer, config, shapes, pc, "train");
  std::vector<ContrastiveExample> val;  // ranked as a whole at every validation: kept normalised
  if (!pc.val_path.empty())
    for (const StoredPair& pair : load_pairs(pc.val_path, tokenizer, config, shapes, pc, "validation"))
      val.push_back(as_example(pair, pc.resize));
  if (!val.empty() && val.size() < 2) throw Error("--val needs at least 2 records to rank captions");
  const int n = static_cast<int>(train.size());
  if (n < pc.batch_size)
    throw Error(pc.train_path + " has " + std::to_string(n) + " records, fewer than --batch-size " +
                std::to_string(pc.batch_size));
  summary.train_examples = n;
  summary.val_examples = static_cast<int>(val.size());

  // Every checkpoint tensor but the vision tower's stays in the mapped file (it is only
  // copied into model/); the tower's become f32 masters, with the new tensors beside them.
  Parameters params = Parameters::from_checkpoint(
      ckpt, config, [](const std::string& name) { return name.rfind("vision_tower.", 0) != 0; });
  std::vector<std::string> names;
  for (const auto& [name, t] : params.tensors())
    if (name.rfind("vision_tower.", 0) == 0) names.push_back(name);
  Parameters fresh = init_contrastive_tensors(shapes, pc.seed, pc.t_prime_init, pc.bias_init);
  for (auto& [name, t] : fresh.tensors()) {
    if (params.has(name))
      throw Error(pc.model_dir + " already has a tensor " + name + " (not a PaliGemma checkpoint?)");
    names.push_back(name);
    params.add(name, std::move(t));
  }
  std::sort(names.begin(), names.end());
  Optimizer optimizer(pc.optimizer, params, names);
  Parameters grads;
  for (const std::string& name : names) grads.add(name, Tensor{params.at(name).shape, {}});
  for (auto& [name, t] : grads.tensors()) t.data.assign(params.at(name).data.size(), 0.0f);

  const int64_t steps_per_epoch = n / pc.batch_size;  // the remainder waits for the next epoch's order
  Schedule schedule;
  schedule.kind = pc.schedule;
  schedule.total_steps = pc.steps;
  schedule.warmup_steps = pc.warmup_steps;

  fs::create_directories(pc.out_dir);
  const std::string state_dir = pc.out_dir + "/state";
  const nlohmann::json identity = {
      {"train", fs::absolute(pc.train_path).string()},
      {"examples", n},
      {"batch_size", pc.batch_size},
      {"steps", pc.steps},
      {"seed", pc.seed},
      {"text", {pc.text.layers, shapes.text.hidden, shapes.text.heads, shapes.text.intermediate, shapes.max_positions}},
      {"lr", pc.optimizer.lr},
      {"warmup", pc.warmup_steps}};
  int64_t start = 0;
  if (pc.resume && fs::exists(state_dir + "/state.json")) {
    std::ifstream in(state_dir + "/state.json");
    const nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
    if (state.is_discarded() || !state.contains("step")) throw Error(state_dir + "/state.json is not a saved state");
    if (state["run"] != identity)
      throw Error("cannot resume from " + state_dir + ": it belongs to a different run (" + state["run"].dump() +
                  ", this run: " + identity.dump() + ")");
    Parameters saved = load_parameters(state_dir + "/params.safetensors");
    for (auto& [name, t] : saved.tensors()) params.at(name) = std::move(t);
    optimizer.first_moment() = load_parameters(state_dir + "/adam_m.safetensors");
    optimizer.second_moment() = load_parameters(state_dir + "/adam_v.safetensors");
    start = state["step"].get<int64_t>();
    optimizer.set_steps(start);
    if (!pc.quiet)
      std::fprintf(stderr, "pretrain-vision: resuming at step %lld of %lld\n", (long long)start, (long long)pc.steps);
  }
  auto save_state = [&](int64_t step) {
    fs::create_directories(state_dir);
    save_parameters(subset(params, names), state_dir + "/params.safetensors");
    save_parameters(optimizer.first_moment(), state_dir + "/adam_m.safetensors");
    save_parameters(optimizer.second_moment(), state_dir + "/adam_v.safetensors");
    std::ofstream(state_dir + "/state.json.tmp") << nlohmann::json{{"step", step}, {"run", identity}}.dump(2) << "\n";
    fs::rename(state_dir + "/state.json.tmp", state_dir + "/state.json");
  };
  std::ofstream metrics = open_metrics_log(pc.out_dir + "/metrics.jsonl", start);

  const int E = shapes.embed_dim();
  int64_t trained_values = 0;
  for (const std::string& name : names) trained_values += params.at(name).numel();
  auto validate = [&]() { return retrieval_accuracy(embed_all(params, shapes, val), val, E, &summary.val_chance); };
  if (!pc.quiet)
    std::fprintf(stderr,
                 "pretrain-vision: %d pairs, %lld steps of batch %d, training %zu tensors (%.2f M values: vision "
                 "tower, pooling head, %d-layer text tower of width %d, t', b)\n",
                 n, (long long)pc.steps, pc.batch_size, names.size(), static_cast<double>(trained_values) / 1e6,
                 shapes.text_layers, shapes.text.hidden);
  if (start == 0 && !val.empty()) {
    summary.initial_val_accuracy = validate();
    metrics << nlohmann::json{{"step", 0}, {"val_retrieval", summary.initial_val_accuracy}}.dump() << "\n"
            << std::flush;
    if (!pc.quiet)
      std::fprintf(stderr, "step 0 validation: image->text top-1 %.3f over %zu pairs (chance %.3f)\n",
                   summary.initial_val_accuracy, val.size(), summary.val_chance);
  }

  const auto t0 = std::chrono::steady_clock::now();
  int64_t cached_epoch = -1;
  std::vector<int> order;
  summary.steps = start;
  for (int64_t step = start; step < pc.steps; ++step) {
    const int64_t epoch = step / steps_per_epoch;
    if (epoch != cached_epoch) {
      order = epoch_order(n, pc.seed, epoch);
      cached_epoch = epoch;
    }
    const int64_t first = (step % steps_per_epoch) * pc.batch_size;
    std::vector<ContrastiveExample> batch;
    for (int i = 0; i < pc.batch_size; ++i) batch.push_back(as_example(train[order[first + i]], pc.resize));
    const auto ts = std::chrono::steady_clock::now();
    grads.fill(0.0f);
    const double loss = contrastive_loss_and_gradients(params, shapes, batch, &grads).loss;
    const double factor = schedule.factor(optimizer.steps());
    const double norm = optimizer.step(params, grads, factor);
    if (!std::isfinite(loss) || !std::isfinite(norm))
      throw Error("training diverged at step " + std::to_string(step + 1) + " (loss " + std::to_string(loss) +
                  "): lower --lr");
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    PretrainStep rec;
    rec.step = step + 1;
    rec.loss = loss;
    rec.t = std::exp(static_cast<double>(params.at("logit_scale").data[0]));
    rec.b = params.at("logit_bias").data[0];
    rec.lr = pc.optimizer.lr * factor;
    rec.grad_norm = norm;
    rec.examples_per_s = pc.batch_size / std::max(dt, 1e-9);
    summary.history.push_back(rec);
    const bool last = step + 1 == pc.steps;
    nlohmann::json line = {
        {"step", rec.step}, {"loss", rec.loss},           {"t", rec.t},     {"b", rec.b},
        {"lr", rec.lr},     {"grad_norm", rec.grad_norm}, {"epoch", epoch}, {"examples_per_s", rec.examples_per_s}};
    if (last && !val.empty()) {
      summary.final_val_accuracy = validate();
      line["val_retrieval"] = summary.final_val_accuracy;
    }
    metrics << line.dump() << "\n" << std::flush;
    if (!pc.quiet) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = elapsed / static_cast<double>(step + 1 - start) * static_cast<double>(pc.steps - step - 1);
      std::fprintf(stderr, "step %lld/%lld  loss %.4f  t %.3f  b %.3f  lr %.2e  |g| %.3g  %.3g ex/s  ETA %s\n",
                   (long long)rec.step, (long long)pc.steps, rec.loss, rec.t, rec.b, rec.lr, rec.grad_norm,
                   rec.examples_per_s, clock_string(eta).c_str());
      if (line.contains("val_retrieval"))
        std::fprintf(stderr, "step %lld validation: image->text top-1 %.3f over %zu pairs (chance %.3f)\n",
                     (long long)rec.step, summary.final_val_accuracy, val.size(), summary.val_chance);
    }
    const bool stop = pc.stop_after > 0 && step + 1 - start == pc.stop_after && !last;
    if (last || stop || (pc.save_every > 0 && (step + 1) % pc.save_every == 0)) save_state(step + 1);
    summary.steps = step + 1;
    if (stop) break;
  }
  summary.finished = summary.steps == pc.steps;
  if (!summary.finished) {
    if (!pc.quiet)
      std::fprintf(stderr, "pretrain-vision: stopped at step %lld of %lld; continue with --resume (state in %s)\n",
                   (long long)summary.steps, (long long)pc.steps, state_dir.c_str());
    return summary;
  }

  // out_dir itself: the PaliGemma checkpoint with the trained tower, stored in the dtype the input
  // stores its tower in (f32 or bf16), so the untouched tensors are copied bit for bit.
  const DType dtype =
      ckpt.get(kVision + "embeddings.patch_embedding.weight").dtype == DType::F32 ? DType::F32 : DType::BF16;
  Parameters paligemma = params;
  Parameters contrastive;
  for (const std::string& name : names)
    if (is_contrastive_tensor(name)) {
      contrastive.add(hf_siglip_name(name), paligemma.at(name));
      paligemma.tensors().erase(name);
    }
  export_hf_checkpoint(paligemma, ckpt, dtype, pc.out_dir);
  fs::create_directories(pc.out_dir + "/siglip");
  save_parameters(contrastive, pc.out_dir + "/siglip/model.safetensors");
  const nlohmann::json text_config = {{"vocab_size", shapes.vocab},
                                      {"hidden_size", shapes.text.hidden},
                                      {"intermediate_size", shapes.text.intermediate},
                                      {"num_hidden_layers", shapes.text_layers},
                                      {"num_attention_heads", shapes.text.heads},
                                      {"max_position_embeddings", shapes.max_positions},
                                      {"layer_norm_eps", shapes.text.eps},
                                      {"hidden_act", shapes.text.act},
                                      {"projection_size", E},
                                      {"eos_token_id", tokenizer.eos_id()}};
  std::ofstream(pc.out_dir + "/siglip/config.json")
      << nlohmann::
             json{{"model_type", "siglip"},
                  {"text_config", text_config},
                  {"note",
                   "the vision tower is in ../model.safetensors (vision_tower.vision_model.*); this file holds the "
                   "pooling head (vision_model.head.*), the text tower, logit_scale and logit_bias"}}
                 .dump(2)
      << "\n";
  if (!pc.quiet)
    std::fprintf(stderr, "pretrain-vision: wrote %s (PaliGemma checkpoint), siglip/, metrics.jsonl\n",
                 pc.out_dir.c_str());
  return summary;
}

}  // namespace pg::train
