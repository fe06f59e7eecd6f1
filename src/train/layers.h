#pragma once
// The differentiable pieces of SigLIP, the projector and Gemma 1/2, each forward beside its
// backward (as in llm.c), on plain row-major arrays. Used by the trainer (float) and by the
// finite-difference tests (double: the same code, exact enough to check every derivative to
// ~1e-7). The forward formulas are those of the inference kernels (src/kernels/ops.h), which
// follow transformers; the backward of each is derived in its comment.
//
// Conventions: x is [M, K] row-major; a Linear weight is [N, K] (PyTorch layout). Every
// backward ADDS into its gradient outputs (dx, dw, db): residual branches and gradient
// accumulation over micro-batches then need no extra buffers. A null gradient pointer means
// "not wanted" (a frozen weight, or the input of the first layer).
#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace pg::train {

// y[M, N] = x[M, K] W[N, K]^T + b[N] (b may be null).
template <typename T>
void linear_forward(const T* x, int M, int K, const T* w, const T* b, int N, T* y);
// dx += dy W; dw += dy^T x; db += column sums of dy.
template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, int M, int K, int N, T* dx, T* dw, T* db);

// nn.LayerNorm over rows of width n: y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps)
// (biased variance). Saves mean and rstd per row for the backward.
template <typename T>
void layer_norm_forward(const T* x, int rows, int n, const T* w, const T* b, T eps, T* y, T* mean, T* rstd);
// With xhat = (x - mean) rstd and g = dy * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += sum_rows dy * xhat,  db += sum_rows dy.
template <typename T>
void layer_norm_backward(const T* dy, const T* x, int rows, int n, const T* w, const T* mean, const T* rstd, T* dx,
                         T* dw, T* db);

// GemmaRMSNorm: y = x * rstd * (1 + w), rstd = 1 / sqrt(mean(x^2) + eps). Saves rstd.
template <typename T>
void rms_norm_forward(const T* x, int rows, int n, const T* w, T eps, T* y, T* rstd);
// With g = dy * (1 + w): dx = rstd * (g - x * rstd^2 * mean(g * x)),  dw += sum_rows dy * x * rstd.
template <typename T>
void rms_norm_backward(const T* dy, const T* x, int rows, int n, const T* w, const T* rstd, T* dx, T* dw);

// GELU, tanh approximation (gelu_pytorch_tanh) and exact (erf): y = gelu(x).
template <typename T>
void gelu_tanh_forward(const T* x, int64_t n, T* y);
template <typename T>
void gelu_tanh_backward(const T* dy, const T* x, int64_t n, T* dx);
template <typename T>
void gelu_erf_forward(const T* x, int64_t n, T* y);
template <typename T>
void gelu_erf_backward(const T* dy, const T* x, int64_t n, T* dx);

// GeGLU of Gemma's MLP: h = act(gate) * up, act = gelu_tanh (or erf with `exact`).
template <typename T>
void geglu_forward(const T* gate, const T* up, int64_t n, bool exact, T* h);
// d gate += dh * up * act'(gate); d up += dh * act(gate).
template <typename T>
void geglu_backward(const T* dh, const T* gate, const T* up, int64_t n, bool exact, T* dgate, T* dup);

// Soft-cap y = cap * tanh(x / cap) (Gemma 2 attention and final logits). The backward needs
// only y: dy/dx = 1 - (y / cap)^2.
template <typename T>
void soft_cap_forward(const T* x, int64_t n, T cap, T* y);
template <typename T>
void soft_cap_backward(const T* dy, const T* y, int64_t n, T cap, T* dx);

// Rotary embedding of `rows` rows of `heads` vectors of size head_dim, with transformers'
// rotate_half pairing (i, i + D/2) and per-row tables cos/sin [rows][D/2] (from
// kernels::rope_angles, as inference builds them), in place. The
// backward of a rotation by theta is the rotation by -theta, applied in place to the gradient.
template <typename T>
void rope_forward(T* x, int rows, int heads, int head_dim, const T* cos_t, const T* sin_t);
template <typename T>
void rope_backward(T* dx, int rows, int heads, int head_dim, const T* cos_t, const T* sin_t);

// Scaled dot-product attention of one sequence, all T rows at once (training: no cache):
//   s = scale * q.k, s = softcap ? cap * tanh(s / cap) : s, mask (kernels::AttentionMask, the
//   same key ranges as inference), p = softmax(s), o = p v.
// q, o: [T, H * D]; k, v: [T, KVH * D] (GQA: kv head j serves q heads j*r .. j*r+r-1).
// Saves the probabilities p [H][T][T] (zeros outside the mask) and, with a soft-cap, the
// capped scores' tanh term for the backward.
template <typename T>
struct AttentionSaved {
  std::vector<T> p;     // [H][T][T]
  std::vector<T> capd;  // [H][T][T]: dcapped/draw = 1 - tanh^2 (only with a soft-cap)
};
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, int rows, const kernels::AttentionShape& shape,
                       const kernels::AttentionMask& mask, T* o, AttentionSaved<T>* saved);
// dp = do v^T; ds = p * (dp - sum_j p dp) (softmax); through the cap; dq += scale ds k;
// dk += scale ds^T q; dv += p^T do (GQA: the q heads of a group add into their kv head).
template <typename T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, int rows,
                        const kernels::AttentionShape& shape, const kernels::AttentionMask& mask,
                        const AttentionSaved<T>& saved, T* dq, T* dk, T* dv);

// Inverted dropout: keep[i] = 1 with probability 1 - p (a reproducible stream from `seed`),
// y = x * keep / (1 - p). The backward is the same product applied to the gradient.
std::vector<uint8_t> dropout_mask(int64_t n, float p, uint64_t seed);
template <typename T>
void apply_dropout(T* x, const std::vector<uint8_t>& keep, float p);

// SigLIP's sigmoid contrastive loss (Zhai et al. 2023, Algorithm 1; big_vision's
// `siglip` loss): x_i = img_i / |img_i|, y_j = txt_j / |txt_j| (rows of [n, dim]),
// logit_ij = exp(t') x_i . y_j + b, label_ij = +1 on the diagonal (matching pairs), -1 off it,
// loss = -(1/n) sum_ij log sigmoid(label_ij logit_ij). Returns the loss; with non-null
// gradient pointers ADDS d loss / d img, d txt, d t', d b into them.
template <typename T>
double sigmoid_contrastive_loss(const T* img, const T* txt, int n, int dim, T t_prime, T bias, T* dimg, T* dtxt,
                                T* dt_prime, T* dbias);

// Cross-entropy of logits [rows, V] against targets[rows] (-1: no loss at that row), each row
// weighted by weight[row] (the trainer sets 1 / suffix tokens of the example / examples: the
// big_vision per-example mean then batch mean; or 1 / all target tokens: transformers' mean).
// With label smoothing eps the target distribution puts 1 - eps on the target and
// eps / (V - 1) on every other id (big_vision's PaliGemma trainer; not optax.smooth_labels).
// Returns sum_rows weight * loss_row and writes dlogits = weight * (softmax - target) (rows
// without a target get 0). dlogits may be null (loss only).
template <typename T>
double cross_entropy(const T* logits, int rows, int V, const int* targets, const T* weight, T label_smoothing,
                     T* dlogits);

}  // namespace pg::train
