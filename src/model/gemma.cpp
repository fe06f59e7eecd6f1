// The Gemma / Gemma 2 decoder over a KV cache (transformers GemmaModel / Gemma2Model as
// PaliGemma drives them). Several sequences run together: their rows are stacked for every
// matmul and split again only for attention.
//
// Per token: text ids -> embedding * sqrt(hidden) (rounded to f32, as transformers'
// scaled embedding); image ids -> the projected image features, unscaled.
// Positions are 1-based (transformers' PaliGemma: position = index + 1).
// Gemma 1 block: x += attn(norm(x)); x += mlp(norm(x)).
// Gemma 2 block: x += post_attn_norm(attn(norm(x))); x += post_ffw_norm(mlp(pre_ffw_norm(x))).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"
#include "model/weights.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"

namespace pg {

KVCache Model::new_cache(int capacity, int prefix_len) const {
  const TextConfig& tc = config_.text;
  KVCache cache;
  cache.capacity = capacity;
  cache.prefix_len = prefix_len;
  cache.dtype = options_.kv_cache;
  const size_t per_layer =
      static_cast<size_t>(tc.num_kv_heads) * capacity * tc.head_dim * dtype_size(cache.dtype);
  cache.k.assign(tc.num_layers, std::vector<uint8_t>(per_layer));
  cache.v.assign(tc.num_layers, std::vector<uint8_t>(per_layer));
  return cache;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (const auto& layer : k) n += layer.size();
  for (const auto& layer : v) n += layer.size();
  return n;
}

namespace {

// D values of one head at cache position p, in the cache's dtype.
void store_kv(const float* src, int D, DType dtype, uint8_t* layer, int64_t index) {
  if (dtype == DType::BF16) {
    uint16_t* dst = reinterpret_cast<uint16_t*>(layer) + index * D;
    for (int d = 0; d < D; ++d) dst[d] = f32_to_bf16(src[d]);
  } else {
    std::copy_n(src, D, reinterpret_cast<float*>(layer) + index * D);
  }
}

}  // namespace

void Model::decode(std::vector<DecoderStep>& steps) const {
  const TextConfig& tc = config_.text;
  const Weights& w = *weights_;
  const int H = tc.hidden_size, I = tc.intermediate_size, D = tc.head_dim, V = tc.vocab_size;
  const int q_dim = tc.num_heads * D, kv_dim = tc.num_kv_heads * D;

  // Row offsets of each step in the stacked activations.
  std::vector<int> row0(steps.size() + 1, 0);
  for (size_t s = 0; s < steps.size(); ++s) {
    const DecoderStep& st = steps[s];
    if (!st.cache || st.count <= 0) throw Error("decoder step " + std::to_string(s) + " has no tokens");
    if (st.cache->length + st.count > st.cache->capacity)
      throw Error("KV cache overflow: " + std::to_string(st.cache->length + st.count) + " positions, capacity " +
                  std::to_string(st.cache->capacity));
    row0[s + 1] = row0[s] + st.count;
  }
  const int R = row0.back();

  // Embeddings.
  std::vector<float> x(static_cast<size_t>(R) * H);
  const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(H)));
  for (size_t s = 0; s < steps.size(); ++s) {
    const DecoderStep& st = steps[s];
    int image_row = 0;
    for (int t = 0; t < st.count; ++t) {
      const int id = st.ids[t];
      float* row = x.data() + static_cast<int64_t>(row0[s] + t) * H;
      // Image positions of a prompt take the image features. A generated <image> id (a random
      // model may emit one) has no features and is embedded like text, as transformers does.
      if (id == config_.image_token_index && st.image_features) {
        if (image_row >= st.image_rows)
          throw Error("decoder step has more <image> tokens than the " + std::to_string(st.image_rows) +
                      " image feature rows given");
        std::copy_n(st.image_features + static_cast<int64_t>(image_row++) * H, H, row);
        continue;
      }
      if (id < 0 || id >= V) throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                                         std::to_string(V));
      kernels::dequantize_rows_f32(w.embed, id, 1, row);
      for (int i = 0; i < H; ++i) row[i] *= normalizer;
    }
  }

  // Rotary tables per row.
  std::vector<float> cos_t(static_cast<size_t>(R) * (D / 2)), sin_t(cos_t.size());
  for (size_t s = 0; s < steps.size(); ++s)
    for (int t = 0; t < steps[s].count; ++t) {
      const int r = row0[s] + t;
      kernels::rope_angles(steps[s].cache->length + t + 1, D, tc.rope_theta, cos_t.data() + r * (D / 2),
                  sin_t.data() + r * (D / 2));
    }

  kernels::AttentionShape shape;
  shape.num_heads = tc.num_heads;
  shape.num_kv_heads = tc.num_kv_heads;
  shape.head_dim = D;
  shape.scale = tc.query_scale();
  shape.softcap = tc.arch == TextArch::Gemma2 ? tc.attn_logit_softcap : 0.0f;

  const bool gemma2 = tc.arch == TextArch::Gemma2;
  std::vector<float> h(x.size()), q(static_cast<size_t>(R) * q_dim), k(static_cast<size_t>(R) * kv_dim),
      v(k.size()), attn(q.size()), o(x.size()), gate(static_cast<size_t>(R) * I), up(gate.size());
  for (int l = 0; l < tc.num_layers; ++l) {
    const TextLayer& L = w.text[l];
    kernels::rms_norm(x.data(), h.data(), R, H, L.input_norm.data(), tc.rms_norm_eps);
    apply_linear(L.q, h.data(), R, q.data());
    apply_linear(L.k, h.data(), R, k.data());
    apply_linear(L.v, h.data(), R, v.data());
    for (int r = 0; r < R; ++r) {
      kernels::rope(q.data() + static_cast<int64_t>(r) * q_dim, tc.num_heads, D, cos_t.data() + r * (D / 2),
                    sin_t.data() + r * (D / 2));
      kernels::rope(k.data() + static_cast<int64_t>(r) * kv_dim, tc.num_kv_heads, D, cos_t.data() + r * (D / 2),
                    sin_t.data() + r * (D / 2));
    }
    kernels::AttentionMask mask;
    mask.causal = true;
    mask.window = (options_.sliding_window == SlidingWindowMode::Transformers && tc.layer_is_sliding[l])
                      ? tc.sliding_window : 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      KVCache& cache = *steps[s].cache;
      uint8_t* kc = cache.k[l].data();
      uint8_t* vc = cache.v[l].data();
      for (int t = 0; t < steps[s].count; ++t) {
        const int r = row0[s] + t, p = cache.length + t;
        for (int g = 0; g < tc.num_kv_heads; ++g) {
          const int64_t index = static_cast<int64_t>(g) * cache.capacity + p;
          store_kv(k.data() + static_cast<int64_t>(r) * kv_dim + g * D, D, cache.dtype, kc, index);
          store_kv(v.data() + static_cast<int64_t>(r) * kv_dim + g * D, D, cache.dtype, vc, index);
        }
      }
      mask.prefix_len = cache.prefix_len;
      profile::Scope scope("attention.text");
      kernels::attention(q.data() + static_cast<int64_t>(row0[s]) * q_dim, steps[s].count, cache.length,
                         kernels::KVView{kc, vc, cache.dtype, cache.capacity}, cache.length + steps[s].count, shape,
                         mask, attn.data() + static_cast<int64_t>(row0[s]) * q_dim);
    }
    apply_linear(L.o, attn.data(), R, o.data());
    if (gemma2) {
      kernels::rms_norm(o.data(), o.data(), R, H, L.post_attn_norm.data(), tc.rms_norm_eps);
      kernels::add(x.data(), o.data(), x.size());
      kernels::rms_norm(x.data(), h.data(), R, H, L.pre_ffw_norm.data(), tc.rms_norm_eps);
    } else {
      kernels::add(x.data(), o.data(), x.size());
      kernels::rms_norm(x.data(), h.data(), R, H, L.post_attn_norm.data(), tc.rms_norm_eps);
    }
    apply_linear(L.gate, h.data(), R, gate.data());
    apply_linear(L.up, h.data(), R, up.data());
    if (tc.hidden_act == "gelu")
      kernels::gelu_erf(gate.data(), gate.size());
    else
      kernels::gelu_tanh(gate.data(), gate.size());
    kernels::multiply(gate.data(), up.data(), gate.size());
    apply_linear(L.down, gate.data(), R, o.data());
    if (gemma2) kernels::rms_norm(o.data(), o.data(), R, H, L.post_ffw_norm.data(), tc.rms_norm_eps);
    kernels::add(x.data(), o.data(), x.size());
  }
  for (auto& st : steps) st.cache->length += st.count;

  // Final norm and the (tied) output layer, only on the rows whose logits are wanted; the
  // rows of all sequences share one pass over the output matrix.
  const bool cap = gemma2 && options_.final_logit_softcap && tc.final_logit_softcap > 0.0f;
  std::vector<int> wanted;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (!steps[s].logits) continue;
    const int first = steps[s].all_positions ? row0[s] : row0[s + 1] - 1;
    for (int r = first; r < row0[s + 1]; ++r) wanted.push_back(r);
  }
  if (wanted.empty()) return;
  const int rows = static_cast<int>(wanted.size());
  std::vector<float> hn(static_cast<size_t>(rows) * H);
  for (int i = 0; i < rows; ++i)
    kernels::rms_norm(x.data() + static_cast<int64_t>(wanted[i]) * H, hn.data() + static_cast<int64_t>(i) * H, 1, H,
                      w.final_norm.data(), tc.rms_norm_eps);
  const bool single = steps.size() == 1;
  std::vector<float> all_logits;
  float* out = single ? steps[0].logits : nullptr;
  if (!single) {
    all_logits.resize(static_cast<size_t>(rows) * V);
    out = all_logits.data();
  }
  kernels::matmul(hn.data(), rows, w.lm_head, nullptr, out, "matmul.lm_head");
  if (cap) kernels::soft_cap(out, static_cast<int64_t>(rows) * V, tc.final_logit_softcap);
  if (single) return;
  int i = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (!steps[s].logits) continue;
    const int n = steps[s].all_positions ? steps[s].count : 1;
    std::copy_n(out + static_cast<int64_t>(i) * V, static_cast<int64_t>(n) * V, steps[s].logits);
    i += n;
  }
}

}  // namespace pg
