#pragma once
// Scaled dot-product attention over a KV cache. The full score matrix is never materialised:
// the fast paths are flash-attention style (query blocks x key blocks, online softmax with a
// running max and sum, f32 accumulation); the reference keeps one row of scores per thread.
// The mask is described, not stored: causal, an optional sliding window, and a bidirectional
// prefix block, so each query sees one contiguous key range.
#include <cstdint>

#include "paligemma/tensor.h"

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

// The keys and values: each [num_kv_heads][stride][head_dim] (stride >= kv_len, e.g. the
// cache capacity), stored as F32 or BF16 (both k and v in `dtype`).
struct KVView {
  const void* k = nullptr;
  const void* v = nullptr;
  pg::DType dtype = pg::DType::F32;
  int stride = 0;
};

// q:   [T, num_heads * head_dim], rows for absolute positions q_begin .. q_begin + T - 1
// kv:  positions [0, kv_len) are valid
// out: [T, num_heads * head_dim]; a query that sees no key gets zeros.
// Takes the path pg::kernel_path() names: Avx512 / Amx -> AVX-512 kernel, Avx2 -> AVX2 kernel,
// Reference -> attention_reference; Amx with pg::precision() BF16 and T >= 16 -> the AMX tile
// (q, k, v and the probabilities rounded to bf16, f32 softmax and accumulation; see
// attention_amx.cpp). Throws pg::Error for a K/V dtype other than F32 / BF16.
void attention(const float* q, int T, int q_begin, const KVView& kv, int kv_len, const AttentionShape& shape,
               const AttentionMask& mask, float* out);

// The plain algorithm: one query row at a time, scores for the whole visible range, softmax,
// weighted sum of values. The yardstick of the fast paths.
void attention_reference(const float* q, int T, int q_begin, const KVView& kv, int kv_len,
                         const AttentionShape& shape, const AttentionMask& mask, float* out);

// The key range [first, last) a query at absolute position q attends to.
void attention_key_range(int q, int kv_len, const AttentionMask& mask, int* first, int* last);

}  // namespace pg::kernels
