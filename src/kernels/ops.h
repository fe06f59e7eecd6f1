#pragma once
// Element-wise and row-wise operations of SigLIP and Gemma, in f32, each written to match
// the PyTorch reference expression named in its comment.
#include <cstdint>

#include "paligemma/tensor.h"

namespace pg::kernels {

// nn.LayerNorm over rows of width n: (x - mean) / sqrt(var + eps) * w + b (biased variance).
void layer_norm(float* x, int rows, int n, const float* w, const float* b, float eps);

// GemmaRMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w), computed in f32. `out` may equal `x`.
void rms_norm(const float* x, float* out, int rows, int n, const float* w, float eps);

// torch.nn.functional.gelu(x, approximate="tanh").
void gelu_tanh(float* x, int64_t n);
// Exact erf GELU.
void gelu_erf(float* x, int64_t n);

// cap * tanh(x / cap): Gemma 2's attention and final logit soft-caps.
void soft_cap(float* x, int64_t n, float cap);

// x = exp(x - shift) element-wise (a softmax's numerators), vectorised (vector_math.h: ~1 ulp;
// arguments below -87.3 give 0); serial: the caller runs it inside its own threads.
void exp_shifted(float* x, int64_t n, float shift);

// y = a * b element-wise (GeGLU: gelu(gate) * up).
void multiply(float* a, const float* b, int64_t n);
// y += x
void add(float* y, const float* x, int64_t n);

// Rotary embedding on `heads` vectors of size head_dim laid out contiguously, with
// transformers' rotate_half convention (first half pairs with second half).
// cos/sin have head_dim/2 entries for this position.
void rope(float* x, int heads, int head_dim, const float* cos_half, const float* sin_half);

// cos/sin of the rotary angles for one position (GemmaRotaryEmbedding, default rope):
// inv_freq = 1 / theta^(2i / dim) in f32, angle = position * inv_freq in f32; head_dim / 2
// entries each. (PaliGemma numbers positions from 1.)
void rope_angles(int position, int head_dim, float theta, float* cos_half, float* sin_half);

// im2col of a [C, S, S] image into [(S / P)^2, C * P * P] patches: patch n = (py, px)
// row-major, inside a patch (channel, ky, kx) as an OIHW conv kernel, so the conv with stride
// P is one matmul against the kernel viewed as [out, C * P * P].
void patchify(const float* pixels, int C, int S, int P, float* out);

// In-place softmax of a row of n values (f32, max-subtracted).
void softmax(float* x, int n);

// Widens a whole 1-D/2-D tensor to f32 (for small tensors: norms, biases).
void to_f32(const TensorView& t, float* out);

}  // namespace pg::kernels
