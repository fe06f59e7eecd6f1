#pragma once
// Scaled dot-product attention over a KV cache, one query row at a time, so the full score
// matrix is never materialised (each thread holds one row of scores). The mask is described,
// not stored: causal, an optional sliding window, and a bidirectional prefix block.
#include <cstdint>

namespace pg::kernels {

struct AttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;  // GQA: kv head j serves q heads j*r .. j*r+r-1, r = heads / kv_heads
  int head_dim = 0;
  float scale = 1.0f;    // applied to q.k before the soft-cap
  float softcap = 0.0f;  // 0: none; else cap * tanh(s / cap)
};

// Which keys a query at absolute position q may see:
//   bidirectional (causal = false): every key in [0, kv_len);
//   causal: keys k <= q, and if window > 0 only q - k < window;
//   in both cases, a query inside the prefix block [0, prefix_len) sees the whole block
//   (transformers' blockwise overlay OR-ed onto the causal / sliding-window mask).
struct AttentionMask {
  bool causal = true;
  int prefix_len = 0;
  int window = 0;
};

// q:   [T, num_heads * head_dim], rows for absolute positions q_begin .. q_begin + T - 1
// k,v: [num_kv_heads][kv_stride][head_dim]; positions [0, kv_len) are valid
// out: [T, num_heads * head_dim]
void attention(const float* q, int T, int q_begin, const float* k, const float* v, int kv_len, int kv_stride,
               const AttentionShape& shape, const AttentionMask& mask, float* out);

// The key range [first, last) a query at absolute position q attends to.
void attention_key_range(int q, int kv_len, const AttentionMask& mask, int* first, int* last);

}  // namespace pg::kernels
