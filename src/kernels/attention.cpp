#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace pg::kernels {

void attention_key_range(int q, int kv_len, const AttentionMask& mask, int* first, int* last) {
  if (!mask.causal) {
    *first = 0;
    *last = kv_len;
    return;
  }
  int lo = 0, hi = q + 1;
  if (mask.window > 0) lo = std::max(0, q - mask.window + 1);
  if (q < mask.prefix_len) {  // inside the bidirectional block: the block is a superset
    lo = 0;
    hi = std::max(hi, mask.prefix_len);
  }
  *first = lo;
  *last = std::min(hi, kv_len);
}

void attention(const float* q, int T, int q_begin, const float* k, const float* v, int kv_len, int kv_stride,
               const AttentionShape& shape, const AttentionMask& mask, float* out) {
  const int H = shape.num_heads;
  const int D = shape.head_dim;
  const int group = H / shape.num_kv_heads;
  const int64_t row_stride = static_cast<int64_t>(H) * D;
#pragma omp parallel
  {
    std::vector<float> scores(kv_len);
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int h = 0; h < H; ++h) {
      for (int t = 0; t < T; ++t) {
        const int kvh = h / group;
        const float* qv = q + t * row_stride + static_cast<int64_t>(h) * D;
        const float* kbase = k + static_cast<int64_t>(kvh) * kv_stride * D;
        const float* vbase = v + static_cast<int64_t>(kvh) * kv_stride * D;
        int first, last;
        attention_key_range(q_begin + t, kv_len, mask, &first, &last);
        const int n = last - first;
        float* o = out + t * row_stride + static_cast<int64_t>(h) * D;
        if (n <= 0) {
          std::fill(o, o + D, 0.0f);
          continue;
        }
        for (int j = 0; j < n; ++j) {
          const float* kv = kbase + static_cast<int64_t>(first + j) * D;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int d = 0; d < D; ++d) acc += qv[d] * kv[d];
          scores[j] = acc * shape.scale;
        }
        if (shape.softcap > 0.0f) soft_cap(scores.data(), n, shape.softcap);
        softmax(scores.data(), n);
        std::fill(o, o + D, 0.0f);
        for (int j = 0; j < n; ++j) {
          const float p = scores[j];
          const float* vv = vbase + static_cast<int64_t>(first + j) * D;
#pragma omp simd
          for (int d = 0; d < D; ++d) o[d] += p * vv[d];
        }
      }
    }
  }
}

}  // namespace pg::kernels
