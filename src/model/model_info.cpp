#include "paligemma/model_info.h"

#include <algorithm>

namespace pg {

ParameterCounts count_parameters(const Checkpoint& ckpt) {
  ParameterCounts c;
  for (const auto& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    const int64_t n = t.numel();
    if (name.rfind("vision_tower.", 0) == 0) c.vision += n;
    else if (name.rfind("multi_modal_projector.", 0) == 0) c.projector += n;
    else if (name.rfind("language_model.", 0) == 0) c.language += n;
    else c.other += n;
    c.by_dtype[dtype_name(t.dtype)] += n;
    c.weight_bytes += static_cast<int64_t>(t.nbytes());
  }
  return c;
}

MemoryEstimate estimate_memory(const ModelConfig& config, int64_t weight_bytes, int images, int text_tokens,
                               int new_tokens) {
  const auto& tc = config.text;
  const auto& vc = config.vision;
  MemoryEstimate m;
  m.weight_bytes = weight_bytes;
  const int64_t positions = static_cast<int64_t>(images) * config.image_tokens_per_image() + text_tokens + new_tokens;
  m.kv_cache_bytes = positions * tc.num_layers * 2LL * tc.num_kv_heads * tc.head_dim * 4;
  // Vision tower: x, h, q, k, v, split k/v, attention out (8 x N x Hv) + MLP (N x Iv) + im2col.
  const int64_t N = vc.num_patches();
  const int64_t vision = 4 * (N * (8LL * vc.hidden_size + vc.intermediate_size) +
                              N * 3LL * vc.patch_size * vc.patch_size);
  // Prefill: x, h, o (3 x T x H), q + attention out (2 x T x q_dim), k, v (2 x T x kv_dim),
  // gate and up (2 x T x I), and one row of logits (kept per step only for --dump).
  const int64_t T = positions - new_tokens;
  const int64_t q_dim = static_cast<int64_t>(tc.num_heads) * tc.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(tc.num_kv_heads) * tc.head_dim;
  const int64_t prefill = 4 * (T * (3LL * tc.hidden_size + 2 * q_dim + 2 * kv_dim + 2LL * tc.intermediate_size) +
                               static_cast<int64_t>(tc.vocab_size));
  m.activation_bytes = std::max(vision, prefill);
  return m;
}

}  // namespace pg
